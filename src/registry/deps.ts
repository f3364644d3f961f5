/**
 * What the registry app is built from. Everything with state or I/O is
 * injected so tests can drive `app.callback()` with a temporary store and a
 * fake clock.
 */
import type { Clock } from "../core/clock.js";
import type { Identity } from "../crypto/keys.js";
import type { EventHub } from "./events.js";
import type { Metrics } from "./metrics.js";
import type { Store } from "./store.js";

/** The subset of src/log.ts the registry uses; fields are structured, secrets never passed. */
export interface RegistryLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

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
}

export const silentLogger: RegistryLogger = { debug() {}, info() {}, warn() {}, error() {} };
