// Measures each NAT kind of the lab against what NAT_KINDS claims, with real
// packets: mapping (does the public port depend on the destination?), port
// preservation, filtering of unsolicited inbound, hole punching, IPv6 routing
// and black holes, host migration, and a wireguard-go tunnel across two NATs.
// Needs root; skips with the reason otherwise.

import { expect } from "chai";
import { labNamespaces, WG_SOCKET_DIR } from "./cleanup.js";
import { Lab, skipUnlessLab } from "./lab.js";
import { NAT_KINDS, shiftedPort, type NatKind } from "./nat.js";
import { runSync } from "./netns.js";
import { endpoint, knock, probe, punch, splitEndpoint, UdpServer } from "./udp.js";
import { waitFor } from "./wait.js";
import { WgDevice } from "./wg.js";
import { LAB_PREFIX, type World } from "./world.js";
import { readdirSync } from "node:fs";

const KINDS = Object.keys(NAT_KINDS) as NatKind[];
const ROUTER: Record<NatKind, string> = {
  "full-cone": "fc",
  "address-restricted": "ar",
  "port-restricted": "pr",
  "port-shifting": "ps",
  symmetric: "sym",
};
const hostBehind = (kind: NatKind): string => `h-${ROUTER[kind]}`;

// One host behind a router of each kind, a second port-restricted site for
// hole punching, two reflectors (two addresses, so mapping per destination
// address shows), a stranger that was never contacted, and a public host.
const WORLD: World = {
  routers: [...KINDS.map((nat) => ({ name: ROUTER[nat], nat })), { name: "pr2", nat: "port-restricted" }],
  hosts: [
    ...KINDS.map((k) => ({ name: hostBehind(k), router: ROUTER[k] })),
    { name: "h-pr2", router: "pr2" },
    { name: "refl1" },
    { name: "refl2" },
    { name: "stranger" },
    { name: "pub" },
  ],
};

const REFLECT_PORTS = { a: 7001, b: 7002, v6: 7006 } as const;

/** The public port a NAT should give local port `p`; undefined when it is random. */
function expectedPort(kind: NatKind, p: number): number | undefined {
  if (NAT_KINDS[kind].preservesPort) return p;
  return kind === "port-shifting" ? shiftedPort(p) : undefined;
}

function knocksFrom(server: UdpServer, addr: string): number {
  return server.from(addr).filter((e) => e.payload === "knock").length;
}

describe("lab: NAT kinds measured with real packets", function () {
  this.timeout(60_000);
  let lab: Lab;
  let refl1: string;
  let refl2: string;
  const reflV6 = (): string => endpoint(lab.v6("refl1") as string, REFLECT_PORTS.v6);

  before(async function () {
    skipUnlessLab(this);
    lab = await Lab.create(WORLD);
    refl1 = lab.publicV4("refl1");
    refl2 = lab.publicV4("refl2");
    await UdpServer.start(lab, "refl1", { ports: [REFLECT_PORTS.a, REFLECT_PORTS.b] });
    await UdpServer.start(lab, "refl2", { ports: [REFLECT_PORTS.a] });
    await UdpServer.start(lab, "refl1", { ports: [REFLECT_PORTS.v6], family: 6 });
  });

  after(async function () {
    if (lab === undefined) return;
    await lab.teardown();
    // Nothing may outlive the lab: namespaces, wireguard-go, UAPI sockets.
    expect(labNamespaces(), "lab namespaces left").to.deep.equal([]);
    expect(runSync(["pgrep", "-f", `wireguard-go -f ${LAB_PREFIX}`]).stdout, "wireguard-go left").to.equal(
      "",
    );
    const sockets = readdirSync(WG_SOCKET_DIR, { withFileTypes: true }).filter((f) =>
      f.name.startsWith(LAB_PREFIX),
    );
    expect(sockets, "UAPI sockets left").to.deep.equal([]);
  });

  for (const kind of KINDS) {
    const nat = NAT_KINDS[kind];
    describe(`${kind}: ${nat.commonName}`, () => {
      const host = hostBehind(kind);

      it(`mapping is ${nat.mapping}, port ${nat.preservesPort ? "preserved" : "not preserved"}`, async () => {
        const local = 40001;
        const seen = await probe(lab, host, local, [
          endpoint(refl1, REFLECT_PORTS.a),
          endpoint(refl1, REFLECT_PORTS.b),
          endpoint(refl2, REFLECT_PORTS.a),
        ]);
        expect(seen, "every reflector answered").not.to.include(null);
        const mapped = seen.map((s) => splitEndpoint(s as string));
        for (const m of mapped) expect(m.addr).to.equal(lab.publicV4(host));
        const ports = new Set(mapped.map((m) => m.port));
        if (nat.mapping === "endpoint-independent")
          expect(ports.size, `mappings ${seen.join(" ")}`).to.equal(1);
        else expect(ports.size, `mappings ${seen.join(" ")}`).to.equal(3);
        const want = expectedPort(kind, local);
        if (want !== undefined) expect(mapped[0]?.port).to.equal(want);
        else expect(mapped.map((m) => m.port)).not.to.include(local);
      });

      it(`filtering is ${nat.filtering}; drops are silent`, async () => {
        const server = await UdpServer.start(lab, host, {
          ports: [40100],
          hello: endpoint(refl1, REFLECT_PORTS.a),
        });
        const mapping = await server.observed();
        // Same address as the contacted reflector but another port, then an
        // address never contacted at all.
        const sameAddr = await knock(lab, "refl1", mapping);
        const stranger = await knock(lab, "stranger", mapping);
        const want = {
          "endpoint-independent": [1, 1],
          "address-dependent": [1, 0],
          "address-and-port-dependent": [0, 0],
        }[nat.filtering];
        expect([
          knocksFrom(server, refl1) > 0 ? 1 : 0,
          knocksFrom(server, lab.publicV4("stranger")) > 0 ? 1 : 0,
        ]).to.deep.equal(want);
        expect([sameAddr.refused, stranger.refused], "ICMP errors from the router").to.deep.equal([
          false,
          false,
        ]);
        server.stop();
      });

      it("an unmapped public port answers nothing (1:1 NAT: the host itself answers)", async () => {
        const r = await knock(lab, "stranger", endpoint(lab.publicV4(host), 45000));
        expect(r.refused).to.equal(nat.oneToOne && nat.filtering === "endpoint-independent");
        expect(r.replies).to.equal(0);
      });
    });
  }

  describe("public host (no NAT)", () => {
    it("is seen with its own address and port, and takes unsolicited inbound", async () => {
      const seen = await probe(lab, "pub", 40001, [
        endpoint(refl1, REFLECT_PORTS.a),
        endpoint(refl2, REFLECT_PORTS.a),
      ]);
      expect(seen).to.deep.equal([
        endpoint(lab.publicV4("pub"), 40001),
        endpoint(lab.publicV4("pub"), 40001),
      ]);
      const server = await UdpServer.start(lab, "pub", { ports: [40100] });
      await knock(lab, "stranger", endpoint(lab.publicV4("pub"), 40100));
      expect(knocksFrom(server, lab.publicV4("stranger"))).to.be.greaterThan(0);
      server.stop();
    });
  });

  describe("hole punching", () => {
    it("works between two port-restricted cones when both send", async () => {
      const port = 41000;
      const [a, b] = await punch(
        lab,
        { host: "h-pr", port, to: endpoint(lab.publicV4("h-pr2"), port) },
        { host: "h-pr2", port, to: endpoint(lab.publicV4("h-pr"), port) },
      );
      expect(a.ok && b.ok, JSON.stringify([a, b])).to.equal(true);
      expect(a.from).to.equal(endpoint(lab.publicV4("h-pr2"), port));
      console.log(`      punched in ${Math.max(a.ms, b.ms)} ms`);
    });

    it("fails between port-restricted and symmetric (ports cannot be predicted)", async () => {
      const port = 41100;
      const [a, b] = await punch(
        lab,
        { host: "h-pr2", port, to: endpoint(lab.publicV4(hostBehind("symmetric")), port) },
        { host: hostBehind("symmetric"), port, to: endpoint(lab.publicV4("h-pr2"), port) },
        1500,
      );
      expect([a.ok, b.ok]).to.deep.equal([false, false]);
    });
  });

  describe("IPv6: routed, stateful firewall, black holes", () => {
    it("is not translated", async () => {
      const [seen] = await probe(lab, "h-pr", 40200, [reflV6()]);
      expect(seen).to.equal(endpoint(lab.v6("h-pr") as string, 40200));
    });

    it("admits only replies inbound, silently", async () => {
      const server = await UdpServer.start(lab, "h-pr", { ports: [40300], family: 6, hello: reflV6() });
      await server.observed();
      const target = endpoint(lab.v6("h-pr") as string, 40300);
      const results = await Promise.all([knock(lab, "stranger", target), knock(lab, "refl1", target)]);
      expect(results.map((r) => r.refused)).to.deep.equal([false, false]);
      expect(server.events.filter((e) => e.payload === "knock")).to.deep.equal([]);
      server.stop();
    });

    it("lets two firewalled hosts punch through when both send", async () => {
      const port = 41200;
      const [a, b] = await punch(
        lab,
        { host: "h-pr", port, to: endpoint(lab.v6("h-pr2") as string, port) },
        { host: "h-pr2", port, to: endpoint(lab.v6("h-pr") as string, port) },
      );
      expect(a.ok && b.ok, JSON.stringify([a, b])).to.equal(true);
    });

    for (const host of ["h-pr", "pub"]) {
      it(`blackholeV6(${host}) drops its IPv6 only, and is reversible`, async () => {
        await lab.blackholeV6(host, true);
        expect(await probe(lab, host, 40400, [reflV6()], 800)).to.deep.equal([null]);
        expect(await probe(lab, host, 40401, [endpoint(refl1, REFLECT_PORTS.a)])).not.to.include(null);
        await lab.blackholeV6(host, false);
        expect(await probe(lab, host, 40402, [reflV6()])).not.to.include(null);
      });
    }
  });

  describe("moveHost", () => {
    it("re-addresses a host behind another NAT and back, processes keep running", async () => {
      const server = await UdpServer.start(lab, "h-pr2", { ports: [40500] });
      const steps: [string | undefined, number][] = [
        ["pr", 40501],
        [undefined, 40502],
        ["pr2", 40503],
      ];
      for (const [router, port] of steps) {
        await lab.moveHost("h-pr2", router);
        const [seen] = await probe(lab, "h-pr2", port, [endpoint(refl1, REFLECT_PORTS.a)]);
        expect(seen, `behind ${router ?? "nothing"}`).to.equal(endpoint(lab.publicV4("h-pr2"), port));
        const [seen6] = await probe(lab, "h-pr2", port, [reflV6()]);
        expect(seen6).to.equal(endpoint(lab.v6("h-pr2") as string, port));
        if (router === undefined) {
          // While public, the server bound before the first move takes inbound
          // on the new address: wildcard sockets survive re-addressing.
          await knock(lab, "stranger", endpoint(lab.publicV4("h-pr2"), 40500));
          expect(knocksFrom(server, lab.publicV4("stranger"))).to.be.greaterThan(0);
        }
      }
      expect(lab.routerOf("h-pr2")?.spec.name).to.equal("pr2");
      server.stop();
    });
  });

  describe("wireguard-go across two port-restricted NATs", () => {
    it("handshakes once both sides know each other's public endpoint", async () => {
      const a = await WgDevice.start(lab, "h-pr", { listenPort: 51820, address: "10.99.0.1/24" });
      const b = await WgDevice.start(lab, "h-pr2", { listenPort: 51821, address: "10.99.0.2/24" });
      const aPublic = endpoint(lab.publicV4("h-pr"), 51820);
      const bPublic = endpoint(lab.publicV4("h-pr2"), 51821);
      await Promise.all([
        a.setPeer({ publicKey: b.publicKey, endpoint: bPublic, allowedIps: ["10.99.0.2/32"] }),
        b.setPeer({ publicKey: a.publicKey, endpoint: aPublic, allowedIps: ["10.99.0.1/32"] }),
      ]);
      const t0 = Date.now();
      // Both sides send at once, as DESIGN §4 requires for port-restricted cones.
      const ping = (host: string, to: string) => () =>
        lab.exec(host, ["ping", "-c1", "-W1", to], { allowFail: true }).then((r) => r.code === 0);
      await Promise.all([
        waitFor(ping("h-pr", "10.99.0.2"), { timeoutMs: 20_000, intervalMs: 0, what: "ping a→b" }),
        waitFor(ping("h-pr2", "10.99.0.1"), { timeoutMs: 20_000, intervalMs: 0, what: "ping b→a" }),
      ]);
      console.log(`      tunnel up ${Date.now() - t0} ms after both endpoints were set`);
      expect((await a.endpoints()).get(b.publicKey)).to.equal(bPublic);
      expect((await b.endpoints()).get(a.publicKey)).to.equal(aPublic);
      expect((await a.latestHandshakes()).has(b.publicKey)).to.equal(true);
      a.stop();
      b.stop();
    });
  });
});
