// The hub case of `npm run bench:join` (issue 10, acceptance 6): from a
// newcomer's `scope join` to its first in-tunnel ping answered by a peer
// behind a symmetric NAT. The newcomer sits behind a port-restricted cone, so
// no direct path can exist and the answer must come through the hub: fast
// routes through it from the first second, seed only after its 60 s.
//
// Both profiles run in the same world (hub, symmetric peer, newcomer); the
// hub and the peer are restarted on the profile first, as the main join
// benchmark does. Needs root (network namespaces).

import type { ChildProcess } from "node:child_process";
import { percentile, textTable } from "../test/lab/checks.js";
import { loadAvg } from "../test/lab/meter.js";
import { Scenario, type Timers } from "../test/lab/scenario.js";
import { peerNamed } from "../test/lab/status.js";
import type { World } from "../test/lab/world.js";

const HUB = "hub";
const SYM = "sym";
const NEW = "new";

const WORLD: World = {
  routers: [
    { name: "r-sym", nat: "symmetric", v6: false },
    { name: "r-new", nat: "port-restricted", v6: false },
  ],
  hosts: [
    { name: "reg", v6: false },
    { name: HUB, v6: false },
    { name: SYM, router: "r-sym", v6: false },
    { name: NEW, router: "r-new", v6: false },
  ],
};

/** Resolves with Date.now() when the first echo reply comes back (ping every 20 ms). */
function firstReply(sc: Scenario, host: string, addr: string, timeoutS: number): Promise<number> {
  const child: ChildProcess = sc.lab.spawn(
    host,
    ["ping", "-n", "-i", "0.02", "-W", "1", "-w", String(timeoutS), addr],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      if (/bytes from/.test(d.toString())) {
        resolve(Date.now());
        child.kill("SIGTERM");
      }
    });
    child.once("exit", () => reject(new Error(`no reply from ${addr} within ${timeoutS} s`)));
  });
}

async function timeJoin(sc: Scenario, timers: Timers, i: number, symAddr: string): Promise<number> {
  const name = `${NEW}-${timers}-${i}`;
  const t0 = Date.now();
  await sc.join(NEW, { timers, name });
  const at = await firstReply(sc, NEW, symAddr, 120);
  await sc.leave(NEW);
  await Promise.all(
    [HUB, SYM].map((h) =>
      sc.waitStatus(h, (s) => peerNamed(s, name) === undefined, 15_000, `${name} dropped`),
    ),
  );
  return at - t0;
}

const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** Runs the case and prints its table; returns the fast median in ms. */
export async function hubJoinBench(runs: Record<Timers, number>): Promise<number> {
  console.log("");
  console.log("bench:join, hub case: a newcomer behind a port-restricted NAT, its first in-tunnel ping");
  console.log(`answered by a peer behind a symmetric NAT (only possible through the hub); load ${loadAvg()}`);
  const sc = await Scenario.start(WORLD, "reg");
  sc.daemonLogLevel = "info";
  const samples: Record<Timers, number[]> = { fast: [], seed: [] };
  try {
    for (const timers of ["fast", "seed"] as const) {
      if (sc.edges.size === 0) {
        await sc.join(HUB, { role: "hub", timers });
        await sc.join(SYM, { timers });
      } else {
        for (const h of [HUB, SYM]) {
          await sc.stopDaemon(h);
          await sc.startDaemon(sc.edge(h), timers);
        }
      }
      await sc.waitConverged([HUB, SYM], 120_000);
      const symAddr = (await sc.status(SYM)).self.address;
      for (let i = 1; i <= runs[timers]; i++) {
        const ms = await timeJoin(sc, timers, i, symAddr);
        samples[timers].push(ms);
        console.log(`  ${timers} join ${i}: first answered ping after ${fmt(ms)}`);
      }
    }
  } finally {
    await sc.teardown();
  }
  const med = (t: Timers): number => percentile(samples[t], 50);
  console.log(
    textTable(
      ["timers", "joins", "median", "min", "max"],
      (["fast", "seed"] as const).map((t) => [
        t,
        String(samples[t].length),
        fmt(med(t)),
        fmt(Math.min(...samples[t])),
        fmt(Math.max(...samples[t])),
      ]),
    ),
  );
  console.log(
    `seed/fast median ratio: ${(med("seed") / med("fast")).toFixed(1)}×; load at the end ${loadAvg()}`,
  );
  console.log(`target fast median ≤ 2 s: ${med("fast") <= 2_000 ? "met" : "MISSED"}`);
  return med("fast");
}
