// `npm run demo`: a Scope mesh across every kind of NAT, live.
//
// Builds a lab world (network namespaces, nftables NATs) with a registry and
// a hub on public hosts and six edges: public, full cone, address-restricted,
// port-restricted (dual stack), port-shifting and symmetric. Runs the real
// `scope daemon`s, prints a status table every 0.5 s until the mesh has
// converged (every pair direct or via the hub: reachable), waits until no
// path is still moving (see atRest), pings across every pair through the
// tunnels, prints a summary and tears everything down. With
// --keep the mesh stays up (the tables stay on screen; path changes are
// printed below them) until Ctrl-C.
// Works without a TTY (CI, pipes): then it prints the table only when a path
// changes. Needs root.
//
//   node dist/test/lab/demo.js --repeat 20   # 20 runs in a row, then one line per run

import { parseArgs } from "node:util";
import { labUnavailable } from "./lab.js";
import { ping, textTable } from "./checks.js";
import { Scenario } from "./scenario.js";
import { isSettled, movingOffHub, pairReachable, type PeerStatus, type ScopeStatus } from "./status.js";
import { delay } from "./wait.js";
import { loadAvg } from "./meter.js";
import {
  DEMO_EDGES as EDGES,
  DEMO_HUB as HUB,
  DEMO_NAT_OF as NAT_OF,
  DEMO_WORLD as WORLD,
} from "./demo-world.js";

/** Every member: the hub and the edges. */
const MEMBERS = [HUB, ...EDGES] as const;

/** How often the table is redrawn; status is read more often (POLL_MS) so the figures are not rounded up to it. */
const REFRESH_MS = 500;
const POLL_MS = 100;
const CONVERGE_TIMEOUT_MS = 90_000;
/** After converging, how long the pending hub→direct moves (a second each, docs/hubs.md) may take. */
const REST_TIMEOUT_MS = 30_000;

type Snapshot = Map<string, ScopeStatus>;

async function snapshot(sc: Scenario): Promise<Snapshot> {
  const entries = await Promise.all(
    MEMBERS.map(async (h) => [h, await sc.status(h).catch(() => undefined)] as const),
  );
  return new Map(entries.filter((e): e is [(typeof MEMBERS)[number], ScopeStatus] => e[1] !== undefined));
}

function rows(snap: Snapshot): string[][] {
  const out: string[][] = [];
  for (const [viewer, st] of snap) {
    for (const p of [...st.peers].sort((a, b) => a.name.localeCompare(b.name))) {
      out.push([
        `${viewer} → ${p.name}`,
        `${p.hub !== null ? `hub ${p.hub}` : p.path}${p.settled ? "" : "…"}`,
        p.endpoint ?? "-",
        p.family ?? "-",
        p.latencyMs === null ? "-" : `${p.latencyMs.toFixed(1)} ms`,
        p.reason ?? "",
      ]);
    }
  }
  return out;
}

const render = (snap: Snapshot): string =>
  textTable(["pair", "path", "endpoint", "family", "latency", "reason"], rows(snap));

/** Every unordered pair of members, "a ↔ b". */
const PAIRS: readonly (readonly [string, string])[] = MEMBERS.flatMap((a, i) =>
  MEMBERS.slice(i + 1).map((b) => [a, b] as const),
);
const pairName = ([a, b]: readonly [string, string]): string => `${a} ↔ ${b}`;

const views = (snap: Snapshot): PeerStatus[] => [...snap.values()].flatMap((s) => s.peers);

const complete = (snap: Snapshot): boolean =>
  snap.size === MEMBERS.length && [...snap.values()].every((s) => s.peers.length === MEMBERS.length - 1);

/** Converged as the demo promises it: every pair direct or via the hub. */
const converged = (snap: Snapshot): boolean =>
  complete(snap) && PAIRS.every(([a, b]) => pairReachable(snap, a, b));

/**
 * Nothing is still moving: every view settled (direct, or not direct with a
 * reason) and no proven pair waiting for its announced switch off the hub.
 * A switch drops what is in flight on the hub path at that moment, so the
 * pings wait for this; a settled pair toward a cone may still upgrade later.
 */
const atRest = (snap: Snapshot): boolean =>
  converged(snap) && views(snap).every((p) => isSettled(p) && !movingOffHub(p));

/**
 * When each milestone was first seen, in ms after the joins started, and
 * the last poll at which each pair was not reachable yet (the slowest pair
 * is the one that held convergence up).
 */
class Timeline {
  answering: number | undefined;
  converged: number | undefined;
  /** Every view settled (direct, or not direct with a reason): what the demo required before issue 10's wording. */
  settled: number | undefined;
  rest: number | undefined;
  readonly lastUnreachable = new Map<string, number>();

  constructor(readonly t0: number) {}

  note(snap: Snapshot, at = Date.now() - this.t0): void {
    if (this.converged === undefined) {
      for (const p of PAIRS) if (!pairReachable(snap, ...p)) this.lastUnreachable.set(pairName(p), at);
      if (converged(snap)) this.converged = at;
    }
    if (this.settled === undefined && complete(snap) && views(snap).every(isSettled)) this.settled = at;
    if (this.rest === undefined && atRest(snap)) this.rest = at;
  }

  /** The pairs reachable last, slowest first. */
  slowest(n: number): string[] {
    return [...this.lastUnreachable]
      .sort((x, y) => y[1] - x[1])
      .slice(0, n)
      .map(([pair, at]) => `${pair} (not yet at ${secs(at)} s)`);
  }
}

const secs = (ms: number): string => (ms / 1000).toFixed(1);

/**
 * What live() shows: the table redrawn in place on a TTY (printed when paths
 * change without one), printed below what is on screen when paths change,
 * or nothing.
 */
type Show = "redraw" | "append" | "quiet";

/**
 * Reads status every POLL_MS until `done` says stop, noting milestones in
 * `tl`, and shows the table as `show` says, at most every REFRESH_MS and
 * once more at the end. Without a TTY, "redraw" prints changes only.
 */
async function live(
  sc: Scenario,
  tl: Timeline,
  done: (snap: Snapshot) => boolean,
  show: Show = "redraw",
): Promise<Snapshot> {
  const tty = process.stdout.isTTY === true && show === "redraw";
  let last = "";
  let shownAt = -Infinity;
  for (;;) {
    const snap = await snapshot(sc);
    tl.note(snap);
    const stop = done(snap);
    if (show !== "quiet" && (stop || Date.now() - shownAt >= REFRESH_MS)) {
      shownAt = Date.now();
      const t = secs(Date.now() - tl.t0);
      const table = render(snap);
      if (tty) {
        process.stdout.write(`\x1b[H\x1b[2J${banner()}t = ${t} s\n\n${table}\n`);
      } else {
        // Without a terminal, a line per refresh would bury the story: print when paths change.
        const shape = rows(snap)
          .map((r) => r.slice(0, 4).join(" "))
          .join("\n");
        if (shape !== last) console.log(`\nt = ${t} s\n${table}`);
        last = shape;
      }
    }
    if (stop) return snap;
    await delay(POLL_MS);
  }
}

function banner(): string {
  return `Scope demo: a hub and ${EDGES.length} edges — ${EDGES.map((e) => `${e} (${NAT_OF[e]})`).join(", ")}\n`;
}

async function pingAll(sc: Scenario, snap: Snapshot): Promise<string[][]> {
  const out: string[][] = [];
  for (const from of MEMBERS) {
    const st = snap.get(from);
    if (st === undefined) continue;
    const results = await Promise.all(
      st.peers.map(async (p) => [p, await ping(sc.lab, from, p.address, 3)] as const),
    );
    for (const [p, r] of results) {
      const rtt = r.avgMs === undefined ? "-" : `${r.avgMs.toFixed(2)} ms`;
      out.push([`${from} → ${p.name}`, p.path, `${r.received}/${r.sent}`, rtt]);
    }
  }
  return out;
}

/** What one demo run ended with: its exit status and, for the repeat summary, why. */
interface RunOutcome {
  readonly code: number;
  readonly secs: number;
  readonly converged: boolean;
  /** Milestones in ms after the joins started (undefined: not reached). */
  readonly answeringMs: number | undefined;
  readonly convergedMs: number | undefined;
  readonly settledMs: number | undefined;
  readonly restMs: number | undefined;
  /** Pairs that lost a ping, with their replies ("ps → pub 0/3"). */
  readonly lost: readonly string[];
}

let current: Scenario | undefined;
let stopping = false;

async function runOnce(keep: boolean): Promise<RunOutcome> {
  const started = Date.now();
  let tl: Timeline | undefined;
  const outcome = (code: number, converged: boolean, lost: readonly string[] = []): RunOutcome => ({
    code,
    secs: (Date.now() - started) / 1000,
    converged,
    answeringMs: tl?.answering,
    convergedMs: tl?.converged,
    settledMs: tl?.settled,
    restMs: tl?.rest,
    lost,
  });
  try {
    console.log(banner());
    console.log("building the lab: namespaces, NAT routers, registry…");
    current = await Scenario.start(WORLD, "reg");
    const s = current;
    console.log(`registry at ${s.registryUrl}; joining the hub, then ${EDGES.length} edges at once`);
    await s.join(HUB, { role: "hub" });
    const tline = new Timeline(Date.now());
    tl = tline;
    // Status is read from the start: a daemon whose socket does not answer yet is just not in the table.
    let joinError: unknown;
    const joins = Promise.all(EDGES.map((h) => s.join(h))).then(
      () => (tline.answering = Date.now() - tline.t0),
      (e: unknown) => (joinError = e ?? new Error("join failed")),
    );
    const timedOut = (): boolean => Date.now() - tline.t0 > CONVERGE_TIMEOUT_MS;
    let snap = await live(s, tline, (x) => stopping || joinError !== undefined || converged(x) || timedOut());
    await joins;
    if (joinError !== undefined) throw joinError;
    if (stopping) return outcome(130, false);
    const ok = converged(snap);
    const t = (ms: number | undefined): string => (ms === undefined ? "-" : secs(ms));
    console.log(
      ok
        ? `\nconverged ${t(tline.converged)} s after the joins started: every pair direct or via the hub`
        : `\nNOT converged after ${t(Date.now() - tline.t0)} s`,
    );
    console.log(`  daemons answering (start-up): ${t(tline.answering)} s`);
    console.log(`  last pairs to become reachable: ${tline.slowest(3).join(", ") || "-"}`);
    if (ok && tline.rest === undefined) {
      const restBy = Date.now() + REST_TIMEOUT_MS;
      // Quiet: a redraw would wipe the lines above.
      snap = await live(s, tline, (x) => stopping || atRest(x) || Date.now() > restBy, "quiet");
      if (stopping) return outcome(130, false);
    }
    if (ok) {
      const at = (ms: number | undefined): string => (ms === undefined ? "not yet" : `${secs(ms)} s`);
      console.log(`  at rest (every path settled, no move off the hub pending): ${at(tline.rest)}`);
      console.log(`  every view settled (direct, or not direct with a reason): ${at(tline.settled)}`);
    }

    console.log("\npings through the tunnels (3 each):");
    const pings = await pingAll(s, snap);
    console.log(textTable(["pair", "path", "replies", "avg rtt"], pings));

    const all = views(snap);
    const direct = all.filter((p) => p.path === "direct");
    const reasons = new Map<string, number>();
    for (const p of all.filter((x) => x.path !== "direct")) {
      const k = `${p.path}: ${p.reason ?? "no reason given"}`;
      reasons.set(k, (reasons.get(k) ?? 0) + 1);
    }
    // Every pair must answer now, direct or through the hub.
    const lost = pings.filter((r) => !(r[2] ?? "").startsWith("3/")).map((r) => `${r[0]} ${r[2]}`);
    console.log("\nsummary");
    console.log(
      `  ${direct.length}/${all.length} peer views direct (${direct.filter((p) => p.family === "ipv6").length} over IPv6)`,
    );
    for (const [k, n] of reasons) console.log(`  ${n} × ${k}`);
    console.log(`  pairs with lost pings: ${lost.length}`);

    if (keep && !stopping) {
      console.log("\n--keep: the mesh stays up; path changes are printed below. Ctrl-C tears it down.");
      await live(s, tline, () => stopping, "append");
    }
    return outcome(ok && lost.length === 0 ? 0 : 1, ok, lost);
  } catch (e) {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    return outcome(1, false);
  } finally {
    await current?.teardown();
    current = undefined;
    if (!stopping) console.log("\nlab torn down: no namespaces, processes or files left");
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { keep: { type: "boolean" }, repeat: { type: "string" } } });
  const repeat = Number(values.repeat ?? 1);
  if (!Number.isInteger(repeat) || repeat < 1) {
    console.error("demo: --repeat takes a whole number ≥ 1");
    return 2;
  }
  const why = labUnavailable();
  if (why !== undefined) {
    console.error(`demo: ${why}`);
    return 2;
  }
  // The lab's own handlers remove every namespace and process on SIGINT and
  // SIGTERM; this one says so and ends the --keep loop.
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (stopping) return;
      console.log(`\n${sig}: tearing the lab down`);
      stopping = true;
      void (current?.teardown() ?? Promise.resolve()).then(() => {
        console.log("lab torn down: no namespaces, processes or files left");
        process.exit(sig === "SIGINT" ? 130 : 143);
      });
    });
  }
  const runs: RunOutcome[] = [];
  for (let i = 1; i <= repeat && !stopping; i++) {
    if (repeat > 1) console.log(`\n=== demo run ${i}/${repeat} (load ${loadAvg()}) ===\n`);
    runs.push(await runOnce(values.keep === true && repeat === 1));
  }
  if (repeat > 1) printRepeat(runs);
  return runs.every((r) => r.code === 0) ? 0 : (runs.find((r) => r.code !== 0)?.code ?? 1);
}

/** One line per run of `--repeat N`: exit status, the milestones and the pairs that lost pings. */
function printRepeat(runs: readonly RunOutcome[]): void {
  const t = (ms: number | undefined): string => (ms === undefined ? "-" : `${secs(ms)} s`);
  console.log(`\n${runs.length} demo runs; load at the end ${loadAvg()}`);
  console.log(
    textTable(
      [
        "run",
        "exit",
        "converged",
        "daemons answering",
        "settled",
        "at rest",
        "wall",
        "pairs that lost pings",
      ],
      runs.map((r, i) => [
        String(i + 1),
        String(r.code),
        r.converged ? t(r.convergedMs) : "NO",
        t(r.answeringMs),
        t(r.settledMs),
        t(r.restMs),
        `${r.secs.toFixed(1)} s`,
        r.lost.length === 0 ? "none" : r.lost.join(", "),
      ]),
    ),
  );
  const bad = runs.filter((r) => r.code !== 0).length;
  console.log(`runs that exited 0: ${runs.length - bad}/${runs.length}`);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
