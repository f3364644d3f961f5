/**
 * The built-in "networkmanager" backend plugin: the mesh is a persistent
 * NetworkManager profile "Scope NET" of type wireguard, driven over D-Bus
 * (dbus/), with live peer changes through wg(8) (docs/backends.md,
 * "networkmanager"). backend.ts has the reconcile logic.
 *
 * [backend] options in NET.conf:
 *   interface     = scope0   (lets stats()/close() work before the first apply;
 *                             otherwise read from the stored profile)
 *   firewall-mark = 51820    (wireguard.fwmark of the profile)
 * Keys may also be written with "_" (firewall_mark), like the rest of NET.conf.
 */
import { randomUUID } from "node:crypto";
import { BACKEND_API_VERSION, type BackendContext, type BackendPlugin } from "../../src/core/backend.js";
import { ScopeError } from "../../src/core/errors.js";
import type { Clock } from "../../src/core/clock.js";
import { execRunner, type CommandRunner } from "../../src/exec.js";
import { systemBusFactory, type BusFactory } from "../../dbus/bus.js";
import { NmClient } from "../../dbus/client.js";
import { NetworkManagerBackend } from "./backend.js";
import { fileProfileStore, type ProfileStore } from "./store.js";

export { NetworkManagerBackend } from "./backend.js";

export interface NetworkManagerDeps {
  bus?: BusFactory;
  runner?: CommandRunner;
  store?: ProfileStore;
  clock?: Clock;
  newUuid?: () => string;
}

function fwmarkOption(options: Record<string, string>): number | undefined {
  const raw = options["firewall-mark"] ?? options.firewall_mark;
  if (raw === undefined || raw === "") return undefined;
  const n = /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 0 && n <= 0xffffffff))
    throw new ScopeError(
      "config",
      `networkmanager backend: firewall-mark must be 0..4294967295, not "${raw}"`,
    );
  return n;
}

export function createNetworkManagerBackend(
  ctx: BackendContext,
  deps: NetworkManagerDeps = {},
): NetworkManagerBackend {
  const fwmark = fwmarkOption(ctx.options);
  return new NetworkManagerBackend(ctx, {
    client: new NmClient(deps.bus ?? systemBusFactory, {
      logger: ctx.logger,
      ...(deps.clock !== undefined && { clock: deps.clock }),
    }),
    runner: deps.runner ?? execRunner(),
    store: deps.store ?? fileProfileStore(ctx.stateDir),
    newUuid: deps.newUuid ?? randomUUID,
    ...(fwmark !== undefined && { fwmark }),
  });
}

export const plugin: BackendPlugin = {
  apiVersion: BACKEND_API_VERSION,
  name: "networkmanager",
  create: (ctx) => createNetworkManagerBackend(ctx),
};

export default plugin;
