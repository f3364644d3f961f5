/** The networkmanager plugin against the fake NetworkManager, with named fixtures shared with networkd's tests. */
import { FakeNetworkManager } from "../../../dbus/fake-nm.js";
import { createNetworkManagerBackend } from "../../../plugins/networkmanager/index.js";
import { memoryProfileStore } from "../../../plugins/networkmanager/store.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { context } from "../networkd/fixtures.js";

export const PROFILE = "Scope corp";
export const UUID1 = "5c09e0c4-0000-4000-8000-000000000001";

export function setup(options: Record<string, string> = {}, storedUuid?: string) {
  const nm = new FakeNetworkManager();
  const clock = new FakeClock();
  const ctx = context(options);
  const store = memoryProfileStore(storedUuid);
  let n = 0;
  const backend = createNetworkManagerBackend(ctx, {
    bus: nm.factory,
    runner: nm.runner,
    store,
    clock,
    newUuid: () => `5c09e0c4-0000-4000-8000-00000000000${++n}`,
  });
  return { nm, clock, ctx, store, backend };
}

/** Lets signal handlers and the refresh they queue run to the end. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}
