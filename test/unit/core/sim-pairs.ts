import type { FakeClock } from "../helpers/fake-clock.js";
import { SimWorld, type SimNode } from "../helpers/sim-world.js";
import type { SimHostSpec } from "../helpers/simnet.js";

/** Edges on a fresh simulated world, joined at once and direct (within limitMs simulated). */
export function directMesh(clock: FakeClock, specs: SimHostSpec[], limitMs = 5_000) {
  const w = new SimWorld(clock);
  const nodes = specs.map((s) => w.add(s));
  for (const n of nodes) n.join();
  clock.advanceUntil(() => w.allDirect(), limitMs);
  return { w, nodes };
}

/** Two edges, joined and direct. */
export function directPair(clock: FakeClock, a: SimHostSpec, b: SimHostSpec) {
  const { w, nodes } = directMesh(clock, [a, b]);
  const [na, nb] = nodes as [SimNode, SimNode];
  return { w, a: na, b: nb };
}
