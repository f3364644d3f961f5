// Join benchmark (issue #4, acceptance 8): how long a newcomer takes, from
// starting `scope join` until every peer is settled (direct, or not direct
// with a reason) in its `scope status`, among N edges behind a realistic mix:
// every open NAT kind, some peers with IPv6 black-holed, some reachable only
// by connect-back (address- or port-restricted without usable IPv6: they
// filter the newcomer's packets until they have sent toward it, and the
// newcomer's port-shifting NAT hides its WireGuard mapping from them until a
// peer that received its handshake reports it).
//
//   npm run bench:join                 N=8, fast ×10 and seed ×5
//   npm run bench:join -- --full       N=20
//   npm run bench:join -- --n 12 --fast-runs 20 --seed-runs 5
//   npm run bench:join -- --hub-only   the hub case alone (join-hub.ts)
//
// Both profiles run in the same world. The seed timeline is a property of the
// whole mesh, so before the seed joins every existing daemon is restarted on
// `timers = seed`. The world is reused between joins: the newcomer leaves and
// re-joins with a fresh identity. Needs root (network namespaces).

import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { labUnavailable } from "../test/lab/lab.js";
import { hubJoinBench } from "./join-hub.js";
import { percentile, textTable } from "../test/lab/checks.js";
import { cpuTimes, loadAvg } from "../test/lab/meter.js";
import { Scenario, type Timers } from "../test/lab/scenario.js";
import { allSettled, peerNamed } from "../test/lab/status.js";
import type { NatKind } from "../test/lab/nat.js";
import type { HostSpec, RouterSpec, World } from "../test/lab/world.js";
import { floorTable, startupFloors } from "./startup.js";
import { joinTimeline, timelineTable, type JoinTimeline } from "./join-timeline.js";

type V6 = "on" | "blackholed" | "off";
interface Site {
  readonly kind: NatKind | "public";
  readonly v6: V6;
}

/** The mix, repeated to N: every open kind, black-holed IPv6, and connect-back-only peers. */
const MIX: readonly Site[] = [
  { kind: "public", v6: "on" },
  { kind: "full-cone", v6: "on" },
  { kind: "address-restricted", v6: "off" },
  { kind: "port-restricted", v6: "on" },
  { kind: "port-shifting", v6: "off" },
  { kind: "port-restricted", v6: "blackholed" },
  { kind: "address-restricted", v6: "blackholed" },
  { kind: "full-cone", v6: "blackholed" },
];
const NEWCOMER = "new";
/** Endpoint-independent but not port-preserving: peers cannot guess its WireGuard mapping, only learn it from whoever received its handshake. */
const NEWCOMER_NAT: NatKind = "port-shifting";

export function benchWorld(n: number): { world: World; edges: string[]; sites: Map<string, Site> } {
  const routers: RouterSpec[] = [{ name: "r-new", nat: NEWCOMER_NAT }];
  const hosts: HostSpec[] = [{ name: "reg" }, { name: NEWCOMER, router: "r-new" }];
  const sites = new Map<string, Site>();
  for (let i = 0; i < n; i++) {
    const site = MIX[i % MIX.length] as Site;
    const name = `e${i + 1}`;
    sites.set(name, site);
    const v6 = { v6: site.v6 !== "off", blackholeV6: site.v6 === "blackholed" };
    if (site.kind === "public") {
      hosts.push({ name, ...v6 });
    } else {
      // One router per edge: full cone and address-restricted are 1:1 NATs.
      routers.push({ name: `r-${name}`, nat: site.kind, v6: site.v6 !== "off" });
      hosts.push({ name, router: `r-${name}`, ...v6 });
    }
  }
  return { world: { routers, hosts }, edges: [...sites.keys()], sites };
}

interface JoinSample {
  readonly ms: number;
  /** Share of all CPUs busy (any process) while this join ran, 0-1. */
  readonly cpuBusy: number;
  /** From the daemon's first log line (process up, registry answered) to settled: the engine's share. */
  readonly daemonMs: number;
  readonly direct: number;
  readonly v6: number;
  readonly notDirect: string[];
  readonly timeline: JoinTimeline;
}

/** One join of the newcomer: fresh identity, timed until its status has every edge settled. Leaves afterwards. */
async function timeJoin(
  sc: Scenario,
  edges: readonly string[],
  timers: Timers,
  i: number,
): Promise<JoinSample> {
  const name = `${NEWCOMER}-${timers}-${i}`;
  const t0 = Date.now();
  const cpu0 = cpuTimes();
  await sc.join(NEWCOMER, { timers, name });
  const st = await sc.waitStatus(NEWCOMER, (s) => allSettled(s, edges), 120_000, "every peer settled");
  const settledAt = Date.now();
  const cpu1 = cpuTimes();
  const ms = settledAt - t0;
  // `scope join --foreground` prints its own lines first; the daemon's lines carry a timestamp.
  const logText = readFileSync(sc.edge(NEWCOMER).log, "utf8");
  const firstStamp = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) /m.exec(logText)?.[1];
  const sample: JoinSample = {
    ms,
    cpuBusy: (cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total),
    daemonMs: firstStamp === undefined ? NaN : settledAt - Date.parse(firstStamp),
    direct: st.peers.filter((p) => p.path === "direct").length,
    v6: st.peers.filter((p) => p.path === "direct" && p.family === "ipv6").length,
    notDirect: st.peers.filter((p) => p.path !== "direct").map((p) => `${p.name}: ${p.path} (${p.reason})`),
    timeline: joinTimeline(logText, t0),
  };
  await sc.leave(NEWCOMER);
  // Next join starts from a mesh that has forgotten this one.
  await Promise.all(
    edges.map((e) => sc.waitStatus(e, (s) => peerNamed(s, name) === undefined, 15_000, `${name} dropped`)),
  );
  return sample;
}

/** Puts every existing edge on `timers` (joining them the first time) and waits for a settled mesh. */
async function meshOn(sc: Scenario, edges: readonly string[], timers: Timers): Promise<void> {
  if (sc.edges.size === 0) {
    await sc.joinAll(edges, { timers });
  } else {
    for (const e of edges) {
      await sc.stopDaemon(e);
      await sc.startDaemon(sc.edge(e), timers);
    }
  }
  await sc.waitConverged(edges, 120_000);
}

const cpus = availableParallelism();

const pct = (x: number): string => `${Math.round(x * 100)}%`;

const fmt = (ms: number): string =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      full: { type: "boolean" },
      n: { type: "string" },
      "fast-runs": { type: "string" },
      "seed-runs": { type: "string" },
      "hub-only": { type: "boolean" },
    },
  });
  const why = labUnavailable();
  if (why !== undefined) {
    console.error(`bench:join: ${why}`);
    return 2;
  }
  // The hub case (join-hub.ts): always, and alone with --hub-only.
  const hubRuns = { fast: 5, seed: 1 };
  if (values["hub-only"] === true) {
    await hubJoinBench(hubRuns);
    return 0;
  }
  const n = Number(values.n ?? (values.full === true ? 20 : 8));
  const runs: Record<Timers, number> = {
    fast: Math.max(5, Number(values["fast-runs"] ?? 10)),
    // 0 skips the seed (a quick look at fast alone); otherwise at least 5.
    seed: values["seed-runs"] === "0" ? 0 : Math.max(5, Number(values["seed-runs"] ?? 5)),
  };
  const { world, edges, sites } = benchWorld(n);
  console.log(`bench:join: newcomer behind ${NEWCOMER_NAT} NAT (IPv6 on) joins ${n} edges:`);
  console.log(`  machine load at start (uptime): ${loadAvg()}`);
  for (const [e, s] of sites) console.log(`  ${e.padEnd(4)} ${s.kind.padEnd(19)} IPv6 ${s.v6}`);

  // The part of every join no engine change touches, measured in the same run (bench/startup.ts).
  const floors = startupFloors(5);
  const sc = await Scenario.start(world, "reg");
  // As shipped: debug logging of every probe round on ten daemons costs CPU the join competes for.
  sc.daemonLogLevel = "info";
  const samples: Record<Timers, JoinSample[]> = { fast: [], seed: [] };
  try {
    for (const timers of ["fast", "seed"] as const) {
      if (runs[timers] === 0) continue;
      await meshOn(sc, edges, timers);
      for (let i = 1; i <= runs[timers]; i++) {
        const s = await timeJoin(sc, edges, timers, i);
        samples[timers].push(s);
        const extra = s.notDirect.length > 0 ? `; not direct: ${s.notDirect.join(", ")}` : "";
        console.log(
          `  ${timers} join ${i}: ${fmt(s.ms)} (${s.direct}/${n} direct, ${s.v6} over IPv6, CPUs ${pct(s.cpuBusy)} busy${extra})`,
        );
      }
    }
  } finally {
    await sc.teardown();
  }

  const stats = (
    t: Timers,
    of: (s: JoinSample) => number = (s) => s.ms,
  ): { median: number; p95: number; min: number; max: number } => {
    const ms = samples[t].map(of);
    return {
      median: percentile(ms, 50),
      p95: percentile(ms, 95),
      min: Math.min(...ms),
      max: Math.max(...ms),
    };
  };
  const fast = stats("fast");
  const seed = stats("seed");
  const ratio = seed.median / fast.median;
  console.log("");
  console.log(`join until every peer is settled, N=${n} edges (newcomer's scope status, polled every 50 ms)`);
  console.log(
    "measured: from spawning the newcomer's `scope join --foreground` (one node process: keys, join",
  );
  console.log("request, then the daemon in the same process) until its status has every edge settled");
  console.log(
    '("daemon": from the daemon\'s first log line, i.e. without node start-up, keygen and the join request)',
  );
  console.log(
    textTable(
      ["timers", "joins", "median", "p95", "min", "max", "daemon median", "daemon p95", "CPUs busy"],
      (["fast", "seed"] as const).map((t) => {
        const s = stats(t);
        const d = stats(t, (x) => x.daemonMs);
        const busy = pct(stats(t, (x) => x.cpuBusy).median);
        const row = [fmt(s.median), fmt(s.p95), fmt(s.min), fmt(s.max), fmt(d.median), fmt(d.p95), busy];
        return [t, String(samples[t].length), ...row];
      }),
    ),
  );
  const verdict = (ok: boolean): string => (ok ? "met" : "MISSED");
  console.log("where a fast join's time goes (the newcomer's log, ms since spawning `scope join`):");
  console.log(timelineTable(samples.fast.map((s) => s.timeline)));
  console.log("start-up floor in the same run (before the joins; the newcomer pays one node start):");
  console.log(floorTable(floors));
  console.log("");
  console.log(`seed/fast median ratio: ${ratio.toFixed(1)}×`);
  console.log(
    `CPUs busy: median share of all ${cpus} CPUs busy (every process) while a join ran; near 100% the machine, not the join, sets the pace`,
  );
  console.log(`machine load at the end (uptime): ${loadAvg()}`);
  console.log(`target fast median ≤ 1 s: ${verdict(fast.median <= 1_000)}`);
  console.log(`target fast p95 ≤ 2 s:    ${verdict(fast.p95 <= 2_000)}`);
  console.log(`target ≥ 10× faster:      ${verdict(ratio >= 10)}`);
  await hubJoinBench(hubRuns);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`bench:join failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
