// Start-up floor (issue #9, acceptances 2 and 3): what a `scope` process
// costs before it does anything, next to a bare node in the same run. A
// daemon (and `scope join --foreground`) pays it on every start; 40 edges
// joining at once pay it 40 times on 2 cores.
//
//   node dist/bench/startup.js            7 runs of each
//   node dist/bench/startup.js --runs 15
//   node dist/bench/startup.js --burst 40   (the burst rows: 40 at once; default 40)
//
// Rows: `node -e 0` (the floor no code of ours can go under), `scope
// --version` (the CLI and its command table: every command module is
// imported statically) and `scope daemon --help` (the same graph; the
// daemon adds only its backend plugin when it runs). Wall-clock and CPU
// (user + system, from this process's reaped-children times) medians.
// bench/join.ts prints the `scope daemon --help` row beside its join times.

import { spawn, spawnSync } from "node:child_process";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { percentile, textTable } from "../test/lab/checks.js";
import { cpuSeconds, loadAvg } from "../test/lab/meter.js";
import { SCOPE_CLI } from "../test/lab/scenario.js";

export interface StartupFloor {
  what: string;
  wallMs: number;
  cpuMs: number;
}

/** Median wall and CPU time of `runs` runs of node with args (exit code must be 0). */
function measure(what: string, args: string[], runs: number): StartupFloor {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const before = cpuSeconds(process.pid).children;
    const t = performance.now();
    const r = spawnSync(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    wall.push(performance.now() - t);
    cpu.push((cpuSeconds(process.pid).children - before) * 1000);
    if (r.status !== 0) throw new Error(`${what}: exit ${r.status}: ${r.stderr.toString().trim()}`);
  }
  return { what, wallMs: percentile(wall, 50), cpuMs: percentile(cpu, 50) };
}

export function startupFloors(runs = 7): StartupFloor[] {
  return [
    measure("node -e 0", ["-e", "0"], runs),
    measure("scope --version", [SCOPE_CLI, "--version"], runs),
    measure("scope daemon --help", [SCOPE_CLI, "daemon", "--help"], runs),
  ];
}

/**
 * The burst floor: `n` processes started at once, ms until the last one
 * exits. 40 daemons joining at once pay this before any of them sends a
 * byte; scale.test.ts prints it next to its join time.
 */
export async function burstMs(args: readonly string[], n: number): Promise<number> {
  const t = performance.now();
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve, reject) => {
          const c = spawn(process.execPath, args, { stdio: "ignore" });
          c.on("error", reject);
          c.on("exit", (code) =>
            code === 0 ? resolve() : reject(new Error(`${args.join(" ")}: exit ${code}`)),
          );
        }),
    ),
  );
  return performance.now() - t;
}

/** The three floors for a burst of n (see startupFloors). */
export async function burstFloors(n: number): Promise<StartupFloor[]> {
  const rows: StartupFloor[] = [];
  for (const [what, args] of [
    ["node -e 0", ["-e", "0"]],
    ["scope --version", [SCOPE_CLI, "--version"]],
    ["scope daemon --help", [SCOPE_CLI, "daemon", "--help"]],
  ] as const)
    rows.push({ what: `${n} × ${what} at once`, wallMs: await burstMs(args, n), cpuMs: NaN });
  return rows;
}

export const floorTable = (rows: readonly StartupFloor[]): string =>
  textTable(
    ["process", "wall median", "CPU median"],
    rows.map((r) => [
      r.what,
      `${r.wallMs.toFixed(0)} ms`,
      Number.isNaN(r.cpuMs) ? "-" : `${r.cpuMs.toFixed(0)} ms`,
    ]),
  );

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { runs: { type: "string", default: "7" }, burst: { type: "string", default: "40" } },
  });
  const runs = Math.max(3, Number(values.runs));
  console.log(`bench:startup: ${runs} runs each (${process.version}); load average ${loadAvg()}`);
  console.log(floorTable(startupFloors(runs)));
  const n = Math.max(1, Number(values.burst));
  console.log(`burst: ${n} started at once, wall until the last exits; load average ${loadAvg()}`);
  console.log(floorTable(await burstFloors(n)));
  console.log(`load average at the end: ${loadAvg()}`);
  return 0;
}

const invokedDirectly = (): boolean => {
  try {
    return realpathSync(process.argv[1] ?? "") === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
};
if (invokedDirectly())
  void main().then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
