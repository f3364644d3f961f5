// Acceptance 1 and 2 of the edge daemon (issue #4), in one world and one mesh
// to keep CI time down: two hosts behind each open NAT kind (full cone,
// address-restricted, port-restricted), one behind a port-shifting NAT
// (endpoint-independent without port preservation), a public host, and two
// hosts behind symmetric NATs. IPv6 is off so every path crosses an IPv4 NAT.
//
// 1. Every pair of open hosts goes direct, pings both ways through the
//    tunnel, and uses the peer's NAT-public WireGuard endpoint.
// 2. Symmetric ↔ port-restricted and symmetric ↔ symmetric settle as not
//    direct with a reason, and the daemons stay up without an error loop.

import { expect } from "chai";
import { skipUnlessLab } from "./lab.js";
import { logMark, logSince, ping, wgShow } from "./checks.js";
import { Scenario } from "./scenario.js";
import { isSettled, peerNamed, type ScopeStatus } from "./status.js";
import { delay } from "./wait.js";
import type { NatKind } from "./nat.js";
import type { World } from "./world.js";

const OPEN: readonly (readonly [string, NatKind])[] = [
  ["fc1", "full-cone"],
  ["fc2", "full-cone"],
  ["ar1", "address-restricted"],
  ["ar2", "address-restricted"],
  ["pr1", "port-restricted"],
  ["pr2", "port-restricted"],
  ["ps1", "port-shifting"],
];
const SYMMETRIC = ["sy1", "sy2"] as const;
const PUBLIC = "pub1";
const OPEN_HOSTS = [...OPEN.map(([h]) => h), PUBLIC];
const EDGES = [...OPEN_HOSTS, ...SYMMETRIC];

const WORLD: World = {
  routers: [
    ...OPEN.map(([h, nat]) => ({ name: `r-${h}`, nat, v6: false })),
    ...SYMMETRIC.map((h) => ({ name: `r-${h}`, nat: "symmetric" as const, v6: false })),
  ],
  hosts: [
    { name: "reg", v6: false },
    { name: PUBLIC, v6: false },
    ...[...OPEN.map(([h]) => h), ...SYMMETRIC].map((h) => ({ name: h, router: `r-${h}`, v6: false })),
  ],
};

/** Unordered pairs of a list. */
function pairs<T>(xs: readonly T[]): [T, T][] {
  return xs.flatMap((a, i) => xs.slice(i + 1).map((b): [T, T] => [a, b]));
}

describe("lab: mesh through every NAT kind", function () {
  this.timeout(240_000);
  let sc: Scenario | undefined;
  const final = new Map<string, ScopeStatus>();

  before(async function () {
    skipUnlessLab(this);
    sc = await Scenario.start(WORLD, "reg");
    await sc.joinAll(EDGES);
    // Symmetric pairs settle when the daemon gives up on them (fast profile: 15 s at most).
    const ms = await sc.waitConverged(EDGES, 60_000);
    console.log(`    ${EDGES.length} edges converged ${ms} ms after the last join`);
    for (const h of EDGES) final.set(h, await sc.status(h));
  });

  after(async () => {
    await sc?.teardown();
  });

  it("every pair of open NAT hosts is direct through the peer's NAT-public WireGuard endpoint", async function () {
    const s = sc as Scenario;
    const wrong: string[] = [];
    for (const [a, b] of pairs(OPEN_HOSTS)) {
      for (const [viewer, peer] of [
        [a, b],
        [b, a],
      ] as const) {
        const p = peerNamed(final.get(viewer) as ScopeStatus, peer);
        const want = s.publicWgEndpoint(peer);
        if (p?.path !== "direct" || p.endpoint !== want || p.family !== "ipv4") {
          wrong.push(
            `${viewer} → ${peer}: ${p?.path} via ${p?.endpoint} (want direct via ${want}) reason=${p?.reason}`,
          );
        }
      }
    }
    expect(wrong, "pairs not direct through the NAT-public endpoint").to.deep.equal([]);
  });

  it("WireGuard itself uses those endpoints (wg show IFACE endpoints)", async function () {
    const s = sc as Scenario;
    const peers = await s.registryPeers();
    const keyOf = (name: string): string =>
      peers.find((p) => p.name === name)?.wgPublicKey ?? `(no key for ${name})`;
    const wrong: string[] = [];
    for (const viewer of OPEN_HOSTS) {
      const eps = await wgShow(s.lab, viewer, s.edge(viewer).iface, "endpoints");
      for (const peer of OPEN_HOSTS.filter((h) => h !== viewer)) {
        const got = eps.get(keyOf(peer));
        if (got !== s.publicWgEndpoint(peer))
          wrong.push(`${viewer}: ${peer} at ${got}, want ${s.publicWgEndpoint(peer)}`);
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it("in-tunnel ping works both ways between every pair of open hosts", async function () {
    const s = sc as Scenario;
    const addr = (h: string): string => (final.get(h) as ScopeStatus).self.address;
    const lost: string[] = [];
    // One source at a time, its destinations in parallel: 2 cores, many namespaces.
    for (const from of OPEN_HOSTS) {
      const results = await Promise.all(
        OPEN_HOSTS.filter((to) => to !== from).map(
          async (to) => [to, await ping(s.lab, from, addr(to), 3)] as const,
        ),
      );
      for (const [to, r] of results)
        if (r.received !== r.sent) lost.push(`${from} → ${to}: ${r.received}/${r.sent}`);
    }
    expect(lost, "pings lost through the tunnel").to.deep.equal([]);
  });

  it("symmetric ↔ port-restricted and symmetric ↔ symmetric are not direct, with a reason", function () {
    const cases: [string, string][] = [
      ...SYMMETRIC.flatMap((sy) => ["pr1", "pr2"].map((pr): [string, string] => [sy, pr])),
      [SYMMETRIC[0], SYMMETRIC[1]],
    ];
    const wrong: string[] = [];
    for (const [a, b] of cases) {
      for (const [viewer, peer] of [
        [a, b],
        [b, a],
      ]) {
        const p = peerNamed(final.get(viewer as string) as ScopeStatus, peer as string);
        const ok = p !== undefined && p.path !== "direct" && p.path !== "pending" && isSettled(p);
        if (!ok)
          wrong.push(
            `${viewer} → ${peer}: path=${p?.path} settled=${p?.settled} reason=${JSON.stringify(p?.reason)}`,
          );
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it("every peer of every edge is settled: direct, or not direct with a reason", function () {
    const open: string[] = [];
    for (const [viewer, st] of final)
      for (const p of st.peers) if (!isSettled(p)) open.push(`${viewer} → ${p.name}: ${p.path}`);
    expect(open).to.deep.equal([]);
  });

  it("daemons keep running cleanly once settled (alive, no error loop)", async function () {
    const s = sc as Scenario;
    const marks = new Map(EDGES.map((h) => [h, logMark(s.edge(h).log)]));
    // Watching for the absence of trouble needs a window; 5 s spans several
    // probe, stats and keepalive rounds of the fast profile.
    await delay(5_000);
    const problems: string[] = [];
    for (const h of EDGES) {
      const e = s.edge(h);
      if (e.daemon === undefined || e.daemon.exitCode !== null || e.daemon.signalCode !== null) {
        problems.push(`${h}: daemon exited (${e.daemon?.exitCode ?? e.daemon?.signalCode})`);
        continue;
      }
      const health = logSince(e.log, marks.get(h) ?? 0);
      if (health.errors.length > 0)
        problems.push(`${h}: ${health.errors.length} errors, first: ${health.errors[0]}`);
      // debug level logs every probe; a loop shows as hundreds of lines per second.
      if (health.lines > 500) problems.push(`${h}: ${health.lines} log lines in 5 s`);
    }
    for (const h of SYMMETRIC) {
      const st = await s.status(h);
      if (st.peers.some((p) => !isSettled(p))) problems.push(`${h}: a peer became unsettled`);
    }
    expect(problems).to.deep.equal([]);
  });
});
