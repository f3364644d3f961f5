import type { FakeClock } from "../helpers/fake-clock.js";
import { SimWorld } from "../helpers/sim-world.js";
import type { SimHostSpec } from "../helpers/simnet.js";

/** Two edges on a fresh simulated world, joined and direct (within 5 s simulated). */
export function directPair(clock: FakeClock, a: SimHostSpec, b: SimHostSpec) {
  const w = new SimWorld(clock);
  const [na, nb] = [w.add(a), w.add(b)];
  na.join();
  nb.join();
  clock.advanceUntil(() => w.allDirect(), 5_000);
  return { w, a: na, b: nb };
}
