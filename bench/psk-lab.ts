// bench:psk --lab: the wall time for an N-peer lab mesh to rotate every
// pair once, from `scope psk rotate` on every host (all at once, over the
// control sockets) to every pair on a new epoch in both views. Needs root
// (network namespaces, wireguard-go); builds public hosts only.

import { controlRequest } from "../src/daemon/control.js";
import { Scenario } from "../test/lab/scenario.js";
import type { ScopeStatus } from "../test/lab/status.js";
import { textTable } from "../test/lab/checks.js";
import { delay } from "../test/lab/wait.js";
import type { World } from "../test/lab/world.js";

export async function labRotation(n: number): Promise<void> {
  const hosts = Array.from({ length: n }, (_, i) => `b${i}`);
  const world: World = {
    routers: [],
    hosts: [{ name: "reg", v6: false }, ...hosts.map((name) => ({ name, v6: false }))],
  };
  const sc = await Scenario.start(world, "reg");
  try {
    sc.daemonLogLevel = "info";
    const tJoin = Date.now();
    await sc.joinAll(hosts, { pskInterval: "1h" });
    await sc.waitConverged(hosts, 300_000, 1_000);
    // The first rotation happens at the join; wait for it everywhere.
    const epochs = async (): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      for (const h of hosts) {
        const st: ScopeStatus = await sc.status(h);
        for (const p of st.peers) out.set(`${h}>${p.name}`, p.psk?.epoch ?? 0);
      }
      return out;
    };
    for (;;) {
      const e = await epochs();
      if (e.size === n * (n - 1) && [...e.values()].every((x) => x > 0)) break;
      await delay(1_000);
    }
    const joined = Date.now() - tJoin;
    const before = await epochs();
    await delay(1_100); // a new second: the new epochs are above the first ones
    const t0 = Date.now();
    await Promise.all(
      hosts.map((h) => controlRequest(sc.edge(h).controlSocket, { cmd: "pskRotate" }, 10_000)),
    );
    let wall = 0;
    for (;;) {
      const e = await epochs();
      if ([...e].every(([k, x]) => x > (before.get(k) ?? 0))) {
        wall = Date.now() - t0;
        break;
      }
      if (Date.now() - t0 > 120_000) throw new Error("the mesh did not rotate within 120 s");
      await delay(100);
    }
    console.log(`lab: ${n} peers (${(n * (n - 1)) / 2} pairs), joined and first PSKs after ${joined} ms`);
    console.log(
      textTable(
        ["lab rotation", "wall ms", "target"],
        [["every pair, both views", String(wall), `<= 3000 ms: ${wall <= 3_000 ? "met" : "MISSED"}`]],
      ),
    );
    console.log("  (measured with status polling of every daemon, itself a load on the CPUs)");
  } finally {
    await sc.teardown();
  }
}
