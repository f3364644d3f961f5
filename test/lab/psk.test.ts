// Acceptance 2 and 3 of issue 11 (post-quantum PSK rotation), sharing one world:
// 2. A 10-peer mesh rotating every 5 s for 60 s under an in-tunnel ping
//    between every pair every 100 ms loses no packet; every pair advances
//    its epoch; `wg show IFACE preshared-keys` agree per pair, differ
//    between pairs and change.
// 3. A peer whose daemon is stopped (SIGSTOP) answers no kex: its tunnels
//    stay up on the last good PSK; after SIGCONT rotation resumes.
// Public hosts only: NAT traversal is the other tests' business.

import { readFileSync } from "node:fs";
import { expect } from "chai";
import { skipUnlessLab } from "./lab.js";
import { LongPing, wgShow, type PingResult } from "./checks.js";
import { Scenario } from "./scenario.js";
import { peerNamed, type ScopeStatus } from "./status.js";
import { delay, waitFor } from "./wait.js";
import type { World } from "./world.js";

const EDGES = Array.from({ length: Number(process.env["PSK_LAB_PEERS"] ?? 10) }, (_, i) => `k${i}`);
const WORLD: World = {
  routers: [],
  hosts: [{ name: "reg", v6: false }, ...EDGES.map((name) => ({ name, v6: false }))],
};
const INTERVAL = "5s";

const pairs = <T>(xs: readonly T[]): [T, T][] =>
  xs.flatMap((a, i) => xs.slice(i + 1).map((b): [T, T] => [a, b]));

describe("lab: post-quantum PSK rotation", function () {
  this.timeout(300_000);
  let sc: Scenario | undefined;

  before(async function () {
    skipUnlessLab(this);
    // The lab lock may be held by another run for minutes: waiting for it is no failure.
    this.timeout(1_800_000);
    sc = await Scenario.start(WORLD, "reg");
    // debug: explainLoss needs the triggers and kex lines; 10 daemons log
    // ~5000 lines in the suite's 2 minutes (measured), nothing the pings feel.
    sc.daemonLogLevel = "debug";
    await sc.joinAll(EDGES, { pskInterval: INTERVAL });
    await sc.waitConverged(EDGES, 60_000, 200);
  });

  after(async () => {
    // A stopped daemon would ignore the teardown's SIGTERM.
    const pid = sc?.edges.get("k3")?.daemon?.pid;
    if (pid !== undefined) process.kill(pid, "SIGCONT");
    await sc?.teardown();
  });

  const s = (): Scenario => sc as Scenario;

  /** host → (peer public key → PSK), from `wg show IFACE preshared-keys`. */
  async function psks(): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    for (const h of EDGES) out.set(h, await wgShow(s().lab, h, s().edge(h).iface, "preshared-keys"));
    return out;
  }

  async function publicKeys(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const h of EDGES) {
      const r = await s().lab.exec(h, ["wg", "show", s().edge(h).iface, "public-key"]);
      out.set(h, r.stdout.trim());
    }
    return out;
  }

  /** The PSK a has for b and b for a; each pair's two views must agree. */
  function pairPsk(all: Map<string, Map<string, string>>, keys: Map<string, string>, a: string, b: string) {
    return [all.get(a)?.get(keys.get(b) ?? ""), all.get(b)?.get(keys.get(a) ?? "")];
  }

  async function epochs(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const h of EDGES) {
      const st: ScopeStatus = await s().status(h);
      for (const p of st.peers) out.set(`${h}>${p.name}`, p.psk?.epoch ?? 0);
    }
    return out;
  }

  it("10 peers rotating every 5 s for 60 s: no packet lost, epochs advance, PSKs agree per pair, differ and change", async function () {
    const keys = await publicKeys();
    // Every pair has a first PSK before the clock starts.
    let missing: string[] = [];
    await waitFor(
      async () => {
        const all = await psks();
        missing = pairs(EDGES)
          .map(([a, b]) => [a, b, ...pairPsk(all, keys, a, b)])
          .filter(([, , x, y]) => x === undefined || x === "(none)" || x !== y)
          .map(([a, b, x, y]) => `${a}-${b} ${x?.slice(0, 6)}/${y?.slice(0, 6)}`);
        return missing.length === 0;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "a first PSK on every pair" },
    ).catch((e: Error) => {
      throw new Error(`${e.message}; pairs without one agreed PSK: ${missing.join(", ")}`);
    });
    const before = await psks();
    const e0 = await epochs();
    const address = new Map<string, string>();
    for (const h of EDGES) address.set(h, (await s().status(h)).self.address);
    const pingsFrom = Date.now();
    const pings = pairs(EDGES).map(([a, b]) => ({
      pair: `${a}-${b}`,
      ping: LongPing.start(s().lab, a, address.get(b) as string, 60, 0.1),
    }));
    const results: [string, PingResult][] = [];
    for (const p of pings) results.push([p.pair, await p.ping.done(120_000)]);
    const after = await psks();
    const e1 = await epochs();

    const lost = results
      .filter(([, r]) => r.received !== r.sent)
      .map(([pair, r]) => `${pair} ${r.sent - r.received}/${r.sent}`);
    if (lost.length > 0) await explainLoss(pings, results, pingsFrom);
    expect(lost, "pings that lost packets").to.deep.equal([]);
    const stuck = [...e1].filter(([k, e]) => !(e > (e0.get(k) ?? 0))).map(([k]) => k);
    expect(stuck, "views whose epoch did not advance").to.deep.equal([]);
    const seen = new Set<string>();
    const problems: string[] = [];
    for (const [a, b] of pairs(EDGES)) {
      const [x, y] = pairPsk(after, keys, a, b);
      const [old] = pairPsk(before, keys, a, b);
      // A rotation may be half-way (E installed, D not yet): then the one-sided view is the only difference.
      if (x !== y && !(await settledAgree(a, b, keys))) problems.push(`${a}-${b} disagree`);
      if (x === old) problems.push(`${a}-${b} unchanged`);
      if (x !== undefined && seen.has(x)) problems.push(`${a}-${b} shares a PSK`);
      if (x !== undefined) seen.add(x);
    }
    expect(problems).to.deep.equal([]);
    const rotations = (await s().status("k0")).peers.map((p) => p.psk?.rotations ?? 0);
    console.log(`    rotations per pair seen by k0: ${rotations.join(" ")}`);
  });

  /**
   * A loss that CI hit once (one pair, ~14 s) and no local run repeated:
   * print when it happened and what both daemons logged around it, and the
   * pair's handshakes, so the next failure explains itself.
   */
  async function explainLoss(
    pings: { pair: string; ping: LongPing }[],
    results: [string, PingResult][],
    from: number,
  ): Promise<void> {
    for (const [i, [pair, r]] of results.entries()) {
      if (r.received === r.sent) continue;
      const seqs = pings[i]?.ping.lostSeqs(r.sent) ?? [];
      if (seqs.length === 0) continue;
      const at = (seq: number): number => from + (seq - 1) * 100;
      const [t0, t1] = [at(seqs[0] as number), at(seqs[seqs.length - 1] as number)];
      console.log(
        `    ${pair}: lost seq ${seqs[0]}..${seqs[seqs.length - 1]} (${seqs.length}), about ${new Date(t0).toISOString()} to ${new Date(t1).toISOString()}`,
      );
      for (const h of pair.split("-")) {
        console.log(
          `    ${h} latest-handshakes: ${JSON.stringify([...(await wgShow(s().lab, h, s().edge(h).iface, "latest-handshakes"))])}`,
        );
        const lines = readFileSync(s().edge(h).log, "utf8").split("\n");
        const near = lines.filter((l) => {
          const t = Date.parse(l.slice(0, 24));
          // Every rotation's install and "rotated" line would bury what broke the pair.
          const routine = l.includes("preshared-key (") || l.includes("psk: rotated");
          return t >= t0 - 6_000 && t <= t1 + 2_000 && !routine;
        });
        for (const l of near.slice(0, 80)) console.log(`      ${h}| ${l.slice(0, 300)}`);
      }
    }
  }

  /** Looks again a moment later: a rotation in flight finishes within a registry round trip. */
  async function settledAgree(a: string, b: string, keys: Map<string, string>): Promise<boolean> {
    for (let i = 0; i < 10; i++) {
      await delay(200);
      const all = await psks();
      const [x, y] = pairPsk(all, keys, a, b);
      if (x === y) return true;
    }
    return false;
  }

  it("a stopped daemon answers no kex: its tunnels stay up on the last good PSK; after SIGCONT rotation resumes", async function () {
    const stopped = "k3";
    const others = EDGES.filter((h) => h !== stopped);
    const keys = await publicKeys();
    const pid = s().edge(stopped).daemon?.pid;
    if (pid === undefined) throw new Error("no daemon pid");
    const address = (await s().status(stopped)).self.address;
    const before = await s().status(stopped);
    process.kill(pid, "SIGSTOP");
    try {
      // Let a rotation that was in flight land (or time out) before looking.
      await delay(2_000);
      const frozen = await wgShow(s().lab, stopped, s().edge(stopped).iface, "preshared-keys");
      const pings = others.map((h) => LongPing.start(s().lab, h, address, 20, 0.1));
      const results = await Promise.all(pings.map((p) => p.done(60_000)));
      expect(
        results.filter((r) => r.received !== r.sent),
        "pings to the stopped peer that lost packets",
      ).to.deep.equal([]);
      // The stopped side configured nothing new, and every peer still has what it has (or went back to it).
      const now = await wgShow(s().lab, stopped, s().edge(stopped).iface, "preshared-keys");
      expect([...now].sort()).to.deep.equal([...frozen].sort());
      for (const h of others) {
        const theirs = (await wgShow(s().lab, h, s().edge(h).iface, "preshared-keys")).get(
          keys.get(stopped) ?? "",
        );
        const mine = frozen.get(keys.get(h) ?? "");
        // Only an answer E sent just before the stop may be unconfirmed for up to 15 s; then E went back.
        if (theirs !== mine)
          await waitFor(
            async () =>
              (await wgShow(s().lab, h, s().edge(h).iface, "preshared-keys")).get(keys.get(stopped) ?? "") ===
              mine,
            { timeoutMs: 20_000, intervalMs: 500, what: `${h} back on the PSK it shares with ${stopped}` },
          );
      }
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const epochBefore = new Map(before.peers.map((p) => [p.name, p.psk?.epoch ?? 0]));
    await s().waitStatus(
      stopped,
      (st) => st.peers.every((p) => (p.psk?.epoch ?? 0) > (epochBefore.get(p.name) ?? 0)),
      30_000,
      "every PSK rotated after SIGCONT",
      250,
    );
    // Both sides agree again.
    await waitFor(
      async () => {
        const mine = await wgShow(s().lab, stopped, s().edge(stopped).iface, "preshared-keys");
        for (const h of others) {
          const theirs = (await wgShow(s().lab, h, s().edge(h).iface, "preshared-keys")).get(
            keys.get(stopped) ?? "",
          );
          if (theirs !== mine.get(keys.get(h) ?? "")) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: `${stopped}'s PSKs agreeing with its peers' again` },
    );
    const st = await s().status(stopped);
    expect(st.peers.every((p) => peerNamed(st, p.name)?.path === "direct")).to.equal(true);
  });
});
