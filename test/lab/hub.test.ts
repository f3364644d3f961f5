// Issue 10, acceptance 1-3: a mesh with one hub, in one world to keep CI time
// down. The hub is a public host behind its own forward-dropping firewall
// (so its one accept rule is exercised); edges behind symmetric,
// port-restricted and full-cone NATs. IPv4 only: every path crosses a NAT.
//
// 1. Pairs that cannot go direct (symmetric ↔ port-restricted, symmetric ↔
//    symmetric) settle `hub` at once, with the hub's name and a reason, and
//    pings cross them through the hub; an open pair still goes direct.
// 2. Only the hub's WireGuard peer carries the network CIDR anywhere (the
//    registry side of "nobody routes through a self-declared hub" is
//    test/registry/roles.test.ts).
// 3. A continuous in-tunnel ping between two open edges, started the moment
//    the second joins, loses nothing while the pair moves from the hub to
//    direct; dropping the direct path at a NAT moves it back to the hub.
// Last, `scope leave` on the hub undoes its forwarding sysctl and firewall rule.

import { expect } from "chai";
import { skipUnlessLab } from "./lab.js";
import { LongPing, ping, wgShow } from "./checks.js";
import { Scenario } from "./scenario.js";
import { isSettled, peerNamed, type ScopeStatus } from "./status.js";
import type { World } from "./world.js";

const HUB = "hub";
const EDGES = ["sy1", "sy2", "pr1", "fc1"] as const;
const CIDR = "10.88.0.0/16";

const WORLD: World = {
  routers: [
    { name: "r-sy1", nat: "symmetric", v6: false },
    { name: "r-sy2", nat: "symmetric", v6: false },
    { name: "r-pr1", nat: "port-restricted", v6: false },
    { name: "r-fc1", nat: "full-cone", v6: false },
    { name: "r-fc2", nat: "full-cone", v6: false },
  ],
  hosts: [
    { name: "reg", v6: false },
    { name: HUB, v6: false },
    ...["sy1", "sy2", "pr1", "fc1", "fc2"].map((h) => ({ name: h, router: `r-${h}`, v6: false })),
  ],
};

const HOST_FIREWALL = [
  "add table inet hostfw",
  "add chain inet hostfw forward { type filter hook forward priority 0; policy drop; }",
].join("\n");
const BREAK_TABLE = "hubtest";
const BREAK_CHAIN = "cut";

describe("lab: mesh with one hub", function () {
  this.timeout(240_000);
  let sc: Scenario | undefined;
  const final = new Map<string, ScopeStatus>();
  const s = (): Scenario => sc as Scenario;
  const sysctl = async (host: string, path: string): Promise<string> =>
    (await s().lab.exec(host, ["cat", path], { allowFail: true })).stdout.trim();

  before(async function () {
    skipUnlessLab(this);
    sc = await Scenario.start(WORLD, "reg");
    await sc.lab.exec(HUB, ["nft", "-f", "-"], { input: HOST_FIREWALL });
    await sc.join(HUB, { role: "hub" });
    await sc.joinAll(EDGES);
    const ms = await sc.waitConverged([HUB, ...EDGES], 60_000);
    console.log(`    hub + ${EDGES.length} edges converged ${ms} ms after the joins`);
    for (const h of [HUB, ...EDGES]) final.set(h, await sc.status(h));
  });

  after(async () => {
    await sc?.teardown();
  });

  const addr = (h: string): string => (final.get(h) as ScopeStatus).self.address;

  it("pairs that cannot go direct settle `hub` with the hub's name and a reason; an open pair is direct", async function () {
    const cases: [string, string][] = [
      ["sy1", "pr1"],
      ["sy2", "pr1"],
      ["sy1", "sy2"],
    ];
    const wrong: string[] = [];
    for (const [a, b] of cases)
      for (const [viewer, peer] of [
        [a, b],
        [b, a],
      ] as const) {
        const p = peerNamed(final.get(viewer) as ScopeStatus, peer);
        if (p?.path !== "hub" || p.hub !== HUB || !isSettled(p))
          wrong.push(
            `${viewer} → ${peer}: ${p?.path} hub=${p?.hub} settled=${p?.settled} reason=${p?.reason}`,
          );
      }
    expect(wrong).to.deep.equal([]);
    // A proven open pair moves off the hub a second after its handshake (docs/hubs.md): wait for it.
    for (const [viewer, peer] of [
      ["pr1", "fc1"],
      ["fc1", "pr1"],
    ] as const) {
      const st = await s().waitStatus(
        viewer,
        (x) => peerNamed(x, peer)?.path === "direct",
        10_000,
        `${peer} direct`,
      );
      final.set(viewer, st);
    }
    for (const e of EDGES) {
      const p = peerNamed(final.get(e) as ScopeStatus, HUB);
      if (p?.path !== "direct") wrong.push(`${e} → hub: ${p?.path}`);
    }
    expect(wrong).to.deep.equal([]);
    const reason = peerNamed(final.get("sy1") as ScopeStatus, "sy2")?.reason ?? "";
    expect(reason).to.match(/symmetric/);
  });

  it("pings cross every pair that goes through the hub", async function () {
    const lost: string[] = [];
    const pairs: [string, string][] = [
      ["sy1", "pr1"],
      ["pr1", "sy2"],
      ["sy1", "sy2"],
      ["sy2", "sy1"],
    ];
    const results = await Promise.all(
      pairs.map(async ([a, b]) => [a, b, await ping(s().lab, a, addr(b), 3)] as const),
    );
    for (const [a, b, r] of results)
      if (r.received !== r.sent) lost.push(`${a} → ${b}: ${r.received}/${r.sent}`);
    expect(lost).to.deep.equal([]);
  });

  it("only the hub's WireGuard peer carries the network CIDR; the hub lists the edges it relays for", async function () {
    const peers = await s().registryPeers();
    const hubKey = peers.find((p) => p.name === HUB)?.wgPublicKey;
    const wrong: string[] = [];
    for (const e of EDGES) {
      const allowed = await wgShow(s().lab, e, s().edge(e).iface, "allowed-ips");
      for (const [key, ips] of allowed) {
        const carries = ips.split(/\s+/).includes(CIDR);
        if (carries !== (key === hubKey)) wrong.push(`${e}: ${key.slice(0, 8)} has ${ips}`);
      }
    }
    expect(wrong).to.deep.equal([]);
    const hub = final.get(HUB) as ScopeStatus;
    expect(hub.self.role).to.equal("hub");
    expect([...(hub.self.relaysFor ?? [])].sort()).to.deep.equal([...EDGES].sort());
    expect(await sysctl(HUB, `/proc/sys/net/ipv4/conf/${s().edge(HUB).iface}/forwarding`)).to.equal("1");
  });

  it("an upgrade from the hub to direct loses no packet (a ping every 50 ms from the newcomer's first moment)", async function () {
    const sc = s();
    await sc.join("fc2");
    // The moment it is a member (its peers are being applied), not before it has an interface peer at all.
    const fc2 = await sc.waitStatus("fc2", (st) => st.self !== null && st.peers.length > 0, 10_000, "joined");
    const startedAt = Date.now();
    // From the first moment: every 50 ms, for 8 s, through the hub first.
    const long = LongPing.start(sc.lab, "fc1", fc2.self.address, 8, 0.05);
    const direct = (st: ScopeStatus, peer: string): boolean => peerNamed(st, peer)?.path === "direct";
    await sc.waitStatus("fc1", (st) => direct(st, "fc2"), 15_000, "fc2 direct");
    await sc.waitStatus("fc2", (st) => direct(st, "fc1"), 15_000, "fc1 direct");
    const r = await long.done();
    expect(r.sent).to.be.above(100);
    const lost = long.lostSeqs(r.sent);
    expect(lost, `lost (ping seq, 50 ms apart from ${new Date(startedAt).toISOString()})`).to.deep.equal([]);
  });

  it("a direct path dropped at a NAT returns to the hub within 5 s", async function () {
    const sc = s();
    const direct = (st: ScopeStatus, peer: string): boolean => peerNamed(st, peer)?.path === "direct";
    await sc.waitStatus("fc1", (st) => direct(st, "fc2"), 15_000, "fc2 direct");
    const fc2 = await sc.status("fc2");
    // Break the direct path at fc2's NAT: everything between the two NATs' public addresses.
    const other = sc.lab.publicV4("fc1");
    await sc.lab.exec("r-fc2", ["nft", "-f", "-"], {
      input: [
        `add table inet ${BREAK_TABLE}`,
        `add chain inet ${BREAK_TABLE} ${BREAK_CHAIN} { type filter hook forward priority -10; }`,
        `add rule inet ${BREAK_TABLE} ${BREAK_CHAIN} ip saddr ${other} drop`,
        `add rule inet ${BREAK_TABLE} ${BREAK_CHAIN} ip daddr ${other} drop`,
      ].join("\n"),
    });
    const t0 = Date.now();
    await sc.waitStatus("fc1", (st) => peerNamed(st, "fc2")?.path === "hub", 5_000, "fc2 back on the hub");
    await sc.waitStatus("fc2", (st) => peerNamed(st, "fc1")?.path === "hub", 5_000, "fc1 back on the hub");
    console.log(`    direct path dropped: both sides on the hub after ${Date.now() - t0} ms`);
    const back = await ping(sc.lab, "fc1", fc2.self.address, 3);
    expect(back.received, "pings through the hub after the direct path broke").to.equal(back.sent);
    await sc.lab.exec("r-fc2", ["nft", "delete", "table", "inet", BREAK_TABLE]);
  });

  it("`scope leave` on the hub undoes its forwarding sysctl and firewall rule", async function () {
    const sc = s();
    const before = await sysctl(HUB, "/proc/sys/net/ipv4/ip_forward");
    const rules = async () => (await sc.lab.exec(HUB, ["nft", "list", "ruleset"])).stdout;
    expect(await rules()).to.contain(`scope hub ${sc.edge(HUB).iface}`);
    const iface = sc.edge(HUB).iface;
    await sc.leave(HUB);
    expect(await rules()).to.not.contain("scope hub");
    expect(await rules()).to.contain("policy drop"); // the host's own firewall is untouched
    expect(await sysctl(HUB, "/proc/sys/net/ipv4/ip_forward")).to.equal(before);
    expect(await sysctl(HUB, `/proc/sys/net/ipv4/conf/${iface}/forwarding`)).to.equal("");
  });
});
