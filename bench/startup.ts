// Start-up floor (issue #9, acceptances 2 and 3): what a `scope` process
// costs before it does anything, next to a bare node in the same run. A
// daemon (and `scope join --foreground`) pays it on every start; 40 edges
// joining at once pay it 40 times on 2 cores.
//
//   node dist/bench/startup.js            7 runs of each
//   node dist/bench/startup.js --runs 15
//
// Rows: `node -e 0` (the floor no code of ours can go under), `scope
// --version` (the CLI and its command table: every command module is
// imported statically) and `scope daemon --help` (the same graph; the
// daemon adds only its backend plugin when it runs). Wall-clock and CPU
// (user + system, from this process's reaped-children times) medians.
// bench/join.ts prints the `scope daemon --help` row beside its join times.

import { spawnSync } from "node:child_process";
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

export const floorTable = (rows: readonly StartupFloor[]): string =>
  textTable(
    ["process", "wall median", "CPU median"],
    rows.map((r) => [r.what, `${r.wallMs.toFixed(0)} ms`, `${r.cpuMs.toFixed(0)} ms`]),
  );

function main(): number {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "7" } } });
  const runs = Math.max(3, Number(values.runs));
  console.log(`bench:startup: ${runs} runs each (${process.version}); load average ${loadAvg()}`);
  console.log(floorTable(startupFloors(runs)));
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
if (invokedDirectly()) process.exitCode = main();
