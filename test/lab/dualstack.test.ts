// Acceptance 3 (issue #4): with IPv6 on both sides the IPv6 path is used;
// with a host's IPv6 black-holed, its peers fall back to IPv4 — at 8 s under
// `timers = seed` (the seed timeline probes IPv6 first), sooner under `fast`
// (all families at once, IPv6 preferred only when it answers).
//
// a and b are dual-stack behind port- and address-restricted routers (IPv6 is
// routed, not NATed, behind a stateful firewall). c's IPv6 address exists and
// is advertised, but its router drops every IPv6 packet to or from it.

import { expect } from "chai";
import { skipUnlessLab } from "./lab.js";
import { wgShow } from "./checks.js";
import { Scenario, type Timers } from "./scenario.js";
import { peerNamed, type ScopeStatus } from "./status.js";
import type { World } from "./world.js";

const WORLD: World = {
  routers: [
    { name: "r-a", nat: "port-restricted" },
    { name: "r-b", nat: "address-restricted" },
    { name: "r-c", nat: "port-restricted" },
  ],
  hosts: [
    { name: "reg" },
    { name: "a", router: "r-a" },
    { name: "b", router: "r-b" },
    { name: "c", router: "r-c", blackholeV6: true },
  ],
};

const directV4 = (s: ScopeStatus, peer: string): boolean => {
  const p = peerNamed(s, peer);
  return p?.path === "direct" && p.family === "ipv4";
};

describe("lab: dual stack", function () {
  this.timeout(180_000);
  let sc: Scenario | undefined;
  const fallbackMs: Partial<Record<Timers, number>> = {};

  before(async function () {
    skipUnlessLab(this);
    sc = await Scenario.start(WORLD, "reg");
    await sc.joinAll(["a", "b"]);
    await sc.waitConverged(["a", "b"], 30_000);
  });

  after(async () => {
    await sc?.teardown();
  });

  it("uses IPv6 when both sides have it", async function () {
    const s = sc as Scenario;
    for (const [viewer, peer] of [
      ["a", "b"],
      ["b", "a"],
    ] as const) {
      const p = peerNamed(await s.status(viewer), peer);
      const want = `[${s.lab.v6(peer)}]:${s.edge(peer).listenPort}`;
      expect(p, `${viewer} → ${peer}`).to.include({ path: "direct", family: "ipv6", endpoint: want });
      const keys = await s.registryPeers();
      const key = keys.find((k) => k.name === peer)?.wgPublicKey ?? "";
      expect((await wgShow(s.lab, viewer, s.edge(viewer).iface, "endpoints")).get(key)).to.equal(want);
    }
  });

  /**
   * Joins c and returns the ms from starting its join until c is direct over
   * IPv4 with a and b and both see c direct over IPv4.
   */
  async function measureFallback(timers: Timers): Promise<number> {
    const s = sc as Scenario;
    const t0 = Date.now();
    await s.join("c", { timers, name: `c-${timers}` });
    await Promise.all([
      s.waitStatus("c", (st) => directV4(st, "a") && directV4(st, "b"), 60_000, "a and b direct over IPv4"),
      s.waitStatus("a", (st) => directV4(st, `c-${timers}`), 60_000, "c direct over IPv4"),
      s.waitStatus("b", (st) => directV4(st, `c-${timers}`), 60_000, "c direct over IPv4"),
    ]);
    const ms = Date.now() - t0;
    const st = await s.status("c");
    for (const peer of ["a", "b"]) expect(peerNamed(st, peer)?.endpoint).to.equal(s.publicWgEndpoint(peer));
    console.log(`    timers=${timers}: IPv4 fallback for a black-holed IPv6 after ${ms} ms`);
    return ms;
  }

  it("falls back to IPv4 for a black-holed peer under fast", async function () {
    fallbackMs.fast = await measureFallback("fast");
  });

  it("falls back to IPv4 for a black-holed peer under seed, not before 8 s", async function () {
    const s = sc as Scenario;
    await s.leave("c");
    // The seed timeline is a property of the whole mesh: run every daemon on it.
    for (const h of ["a", "b"]) {
      await s.stopDaemon(h);
      await s.startDaemon(s.edge(h), "seed");
    }
    await s.waitConverged(["a", "b"], 30_000);
    fallbackMs.seed = await measureFallback("seed");
    expect(fallbackMs.seed).to.be.at.least(8_000);
  });

  it("fast falls back sooner than seed", function () {
    expect(fallbackMs.fast, "fast measured").to.be.a("number");
    expect(fallbackMs.seed, "seed measured").to.be.a("number");
    expect(fallbackMs.fast).to.be.below(fallbackMs.seed as number);
  });
});
