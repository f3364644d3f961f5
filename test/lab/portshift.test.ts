// Issue 9, acceptance 6 (second half): the port-shifting pin.
//
// A port-shifting NAT is endpoint-independent but does not preserve ports:
// the edge's WireGuard port p leaves as p XOR 1024. Only someone who received
// its WireGuard traffic knows that mapping. A public edge and a full-cone edge
// receive it, so they must use the NAT-mapped port, never the configured
// listen port, whatever the order of joins, applies and handshakes; the
// restricted edges learn the mapping from them. Seen in `npm run demo`: the
// public edge kept the port-shifting edge at its listen port while status
// said `direct`, and pings toward it were lost.
//
// The world is the demo's; its open edges join (public, full cone,
// address-restricted, dual-stack port-restricted, port-shifting). Each case
// changes the order (the port-shifting edge first, last, all at once, daemon
// restarts, re-joins), then, as soon as every pair is settled and again after
// in-tunnel pings have crossed, checks on every other edge that `scope
// status` and WireGuard itself (`wg show endpoints`) point at the NAT
// mapping, and that pings get through both ways.

import { expect } from "chai";
import { skipUnlessLab } from "./lab.js";
import { ping, wgShow } from "./checks.js";
import { Scenario } from "./scenario.js";
import { peerNamed } from "./status.js";
import { DEMO_WORLD } from "./demo-world.js";

const PS = "ps";
/**
 * Every other open edge of the demo. The public and full-cone ones receive the
 * port-shifting edge's traffic unsolicited; the restricted ones learn its
 * mapping from them. All must end up on the mapping (seen in the demo loop:
 * pub and, once, ar stayed on the listen port).
 */
const VIEWERS = ["pub", "fc", "ar", "pr"] as const;
const EDGES = [PS, ...VIEWERS];

/**
 * Failed on 5de3971 (before the engine's endpoint evidence) in 1 of 12
 * all-at-once joins here and in 3 of 20 demo runs; passes 13 of 13 since.
 */
/** How many times the all-at-once join (the demo's order) is repeated. */
const AT_ONCE_RUNS = Number(process.env["SCOPE_PORTSHIFT_RUNS"] ?? 6);

describe("lab: a port-shifting peer is reached at its NAT mapping, whatever the order", function () {
  this.timeout(240_000);
  let sc: Scenario | undefined;
  let generation = 0;

  before(async function () {
    skipUnlessLab(this);
    sc = await Scenario.start(DEMO_WORLD, "reg");
  });

  after(async () => {
    await sc?.teardown();
  });

  const s = (): Scenario => sc as Scenario;

  /** Joins hosts at once, each with a fresh identity. */
  const joinFresh = async (hosts: readonly string[]): Promise<void> => {
    const gen = ++generation;
    await Promise.all(hosts.map((h) => s().join(h, { name: gen === 1 ? h : `${h}-${gen}` })));
  };

  /** `scope leave` for hosts, then waits until the remaining edges have dropped them. */
  const leave = async (hosts: readonly string[]): Promise<void> => {
    const names = hosts.map((h) => s().edge(h).name);
    await Promise.all(hosts.map((h) => s().leave(h)));
    await Promise.all(
      [...s().edges.keys()].map((h) =>
        s().waitStatus(
          h,
          (st) => names.every((n) => peerNamed(st, n) === undefined),
          15_000,
          "left peers dropped",
        ),
      ),
    );
  };

  /** What is wrong right now on the viewers: status and WireGuard endpoint of the port-shifting edge. */
  const wrongEndpoints = async (when: string): Promise<string[]> => {
    const want = s().publicWgEndpoint(PS);
    const name = s().edge(PS).name;
    const key = (await s().registryPeers()).find((p) => p.name === name)?.wgPublicKey;
    const wrong: string[] = [];
    for (const v of VIEWERS) {
      const p = peerNamed(await s().status(v), name);
      if (p?.path !== "direct" || p.endpoint !== want)
        wrong.push(`${when}: ${v} status → ${name}: ${p?.path} via ${p?.endpoint} (want direct via ${want})`);
      const wg = (await wgShow(s().lab, v, s().edge(v).iface, "endpoints")).get(key ?? "");
      if (wg !== want) wrong.push(`${when}: ${v} wg show → ${name}: ${wg} (want ${want})`);
    }
    return wrong;
  };

  /** What `from`'s WireGuard holds for `to` (endpoint, allowed IPs, handshake, counters), for a failure's message. */
  const wgPeerDump = async (from: string, to: string): Promise<string> => {
    const key = (await s().registryPeers()).find((p) => p.name === s().edge(to).name)?.wgPublicKey ?? "";
    const r = await s().lab.exec(from, ["wg", "show", s().edge(from).iface, "dump"]);
    const line = r.stdout.split("\n").find((l) => l.startsWith(`${key}\t`));
    // Columns: key, psk, endpoint, allowed IPs, latest handshake, rx, tx, keepalive; the PSK is not shown.
    const [, , endpoint, allowed, handshake, rx, tx] = (line ?? "").split("\t");
    const age = handshake === undefined ? "?" : `${Math.round(Date.now() / 1000 - Number(handshake))} s ago`;
    return line === undefined
      ? `${from}'s wg has no peer ${to}`
      : `${from}'s wg → ${to}: endpoint ${endpoint}, allowed ${allowed}, handshake ${age}, rx ${rx} tx ${tx}`;
  };

  /** Every pair settled, then endpoints and pings checked; returns what went wrong. */
  const check = async (): Promise<string[]> => {
    const ms = await s().waitConverged(EDGES, 30_000);
    const wrong = await wrongEndpoints("when settled");
    const addr = async (h: string): Promise<string> => (await s().status(h)).self.address;
    const pairs = VIEWERS.flatMap((v) => [
      [v, PS],
      [PS, v],
    ]);
    const results = await Promise.all(
      pairs.map(
        async ([from, to]) =>
          [from, to, await ping(s().lab, from as string, await addr(to as string), 3)] as const,
      ),
    );
    for (const [from, to, r] of results)
      if (r.received !== r.sent) {
        wrong.push(`ping ${from} → ${to}: ${r.received}/${r.sent}`);
        wrong.push(await wgPeerDump(from as string, to as string));
      }
    wrong.push(...(await wrongEndpoints("after the pings")));
    console.log(
      `      every pair settled ${ms} ms after the last daemon answered; ${wrong.length === 0 ? "pinned" : wrong.join("; ")}`,
    );
    return wrong;
  };

  it("the port-shifting edge joins first, the others after it is up", async function () {
    await joinFresh([PS]);
    await joinFresh(VIEWERS);
    expect(await check()).to.deep.equal([]);
  });

  it("the port-shifting edge joins last, into a settled mesh", async function () {
    await leave([PS]);
    await joinFresh([PS]);
    expect(await check()).to.deep.equal([]);
  });

  for (let i = 1; i <= AT_ONCE_RUNS; i++) {
    it(`all edges join at once (${i}/${AT_ONCE_RUNS})`, async function () {
      await leave(EDGES);
      await joinFresh(EDGES);
      expect(await check()).to.deep.equal([]);
    });
  }

  it("the port-shifting edge's daemon restarts (SIGTERM, tunnel kept)", async function () {
    await s().stopDaemon(PS);
    await s().startDaemon(s().edge(PS));
    expect(await check()).to.deep.equal([]);
  });

  it("the public edge's daemon is killed (-9) and restarted", async function () {
    await s().stopDaemon("pub", true);
    await s().startDaemon(s().edge("pub"));
    expect(await check()).to.deep.equal([]);
  });

  it("the full-cone edge's daemon restarts", async function () {
    await s().stopDaemon("fc");
    await s().startDaemon(s().edge("fc"));
    expect(await check()).to.deep.equal([]);
  });

  it("the other edges re-join while the port-shifting edge stays", async function () {
    await leave(VIEWERS);
    await joinFresh(VIEWERS);
    expect(await check()).to.deep.equal([]);
  });
});
