/**
 * What the registry app is built from. Everything with state or I/O is
 * injected so tests can drive `app.callback()` with a temporary store and a
 * fake clock.
 */
import type { Clock } from "../core/clock.js";
import { silentLogger, type LogSink } from "../core/logger.js";
import type { Identity } from "../crypto/keys.js";
import type { EventHub } from "./events.js";
import type { Limits } from "./limits.js";
import type { Metrics } from "./metrics.js";
import type { Store } from "./store.js";

/** The registry logs through the common seam; fields are structured, secrets never passed. */
export type RegistryLogger = LogSink;

export interface RegistryDeps {
  store: Store;
  hub: EventHub;
  metrics: Metrics;
  clock: Pick<Clock, "now">;
  log: RegistryLogger;
  /** The registry's own key: signs reflector replies; its public half goes to joiners. */
  registryIdentity: Identity;
  /** UDP reflector ports, announced in JoinResponse. */
  reflectorPorts: [number, number];
  /** SHA-256 of the admin bearer token; undefined disables bearer admin auth (the socket still works). */
  adminTokenHash: Buffer | undefined;
  /** Quotas and rate limits (limits.ts); absent: none (in-process test registries). */
  limits?: Limits;
}

export { silentLogger };
