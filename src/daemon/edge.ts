/**
 * Glue shared by the edge commands: find a network's config, build the
 * daemon from it, reach a running daemon.
 */
import { execRunner } from "../exec.js";
import { HostHubForwarding } from "./hub-forwarding.js";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Backend } from "../core/backend.js";
import { ScopeError } from "../core/errors.js";
import { loadEdgeConfig } from "../config/load.js";
import type { EdgeConfig } from "../config/schema.js";
import type { Identity, WgKeyPair } from "../crypto/keys.js";
import { createLogger, type Logger } from "../log.js";
import { createBackend } from "./backend-loader.js";
import { controlRequest, type ControlRequest } from "./control.js";
import {
  DEFAULT_CONFIG_DIR,
  DEFAULT_STATE_ROOT,
  configPath,
  controlSocketOf,
  loadIdentity,
  loadWgKey,
  readJoinState,
  stateDirOf,
  type JoinState,
} from "./files.js";
import { Daemon, desiredInterface } from "./runtime.js";
import { startScope1Export } from "./scope1-export.js";

export interface EdgeTarget {
  path: string;
  config: EdgeConfig;
}

/** --config FILE, or --network NET (→ /etc/scope/NET.conf), or the only network configured here. */
export async function resolveEdge(
  values: Record<string, unknown>,
  configDir = DEFAULT_CONFIG_DIR,
): Promise<EdgeTarget> {
  if (typeof values.config === "string")
    return { path: values.config, config: loadEdgeConfig(values.config) };
  if (typeof values.network === "string") {
    const path = configPath(configDir, values.network);
    return { path, config: loadEdgeConfig(path) };
  }
  const files = (await readdir(configDir).catch(() => [] as string[])).filter(
    (f) => f.endsWith(".conf") && f !== "registry.conf",
  );
  if (files.length !== 1) {
    throw new ScopeError(
      "usage",
      files.length === 0
        ? `no network configured in ${configDir}: run 'scope join' first`
        : `several networks configured (${files.map((f) => f.slice(0, -5)).join(", ")}): use --network NET`,
    );
  }
  const path = join(configDir, files[0] ?? "");
  return { path, config: loadEdgeConfig(path) };
}

export const stateDirFor = (c: EdgeConfig): string =>
  c.daemon.state_dir ?? stateDirOf(DEFAULT_STATE_ROOT, c.network.name);
export const controlSocketFor = (c: EdgeConfig): string =>
  c.daemon.control_socket ?? controlSocketOf(c.network.name);

export function backendFor(c: EdgeConfig, logger: Logger): Promise<Backend> {
  const { type, ...rest } = c.backend;
  const options: Record<string, string> = { interface: c.wireguard.interface };
  for (const [k, v] of Object.entries(rest)) options[k] = String(v);
  return createBackend(type, {
    network: c.network.name,
    stateDir: stateDirFor(c),
    logger: logger.child("backend"),
    options,
  });
}

/** A backend that is making the interface before the daemon runs (see prepareInterface). */
export interface PreparedBackend {
  logger: Logger;
  backend: Backend;
  /** Resolves true when the interface did not exist before (remove it again if the join fails). */
  created: Promise<boolean>;
}

/**
 * `scope join --foreground` has the interface made while its join request is
 * on the wire: starting wireguard-go (or `ip link add`, or a networkd
 * reload) is the slowest step of a first start, and it needs nothing from
 * the registry. The tunnel address comes later, with the daemon's first
 * apply. Nothing is touched when the interface already has peers: a live
 * tunnel is the daemon's to adopt, as it is after a restart.
 */
export async function prepareInterface(
  c: EdgeConfig,
  wgPrivateKey: Promise<string>,
): Promise<PreparedBackend> {
  const logger = createLogger(`edge/${c.network.name}`);
  const backend = await backendFor(c, logger);
  const create = async (): Promise<boolean> => {
    const live = await backend.stats().catch(() => undefined);
    if (live === undefined || live.length > 0) return false;
    const iface = desiredInterface(c, await wgPrivateKey, []);
    const { created } = await backend.apply({ iface, peers: [] });
    return created === true;
  };
  // The daemon's own first apply repeats this one (and reports a failure).
  return { logger, backend, created: create().catch(() => false) };
}

/**
 * What `scope join --foreground` hands its daemon in memory: the keys and
 * the join answer it is writing to disk, which the daemon would otherwise
 * read back, after the writes, before it could start.
 */
export interface Handover {
  identity: Identity;
  wgKeys: WgKeyPair;
  join: JoinState;
  /** Settles when the config and join state are on disk (DaemonDeps.written). */
  written: Promise<unknown>;
}

export async function buildDaemon(
  c: EdgeConfig,
  prepared?: PreparedBackend,
  handover?: Handover,
): Promise<Daemon> {
  const logger = prepared?.logger ?? createLogger(`edge/${c.network.name}`);
  const [identity, wgKeys, joinState] = handover
    ? [handover.identity, handover.wgKeys, handover.join]
    : await Promise.all([
        loadIdentity(c.identity.key_file),
        loadWgKey(c.wireguard.private_key_file),
        readJoinState(stateDirFor(c)),
      ]);
  const backend = prepared?.backend ?? (await backendFor(c, logger));
  return new Daemon({
    config: c,
    identity,
    wgKeys,
    join: joinState,
    backend,
    ...(prepared ? { backendBusy: prepared.created } : {}),
    ...(handover ? { written: handover.written } : {}),
    controlSocket: controlSocketFor(c),
    logger,
    hubForwarding: new HostHubForwarding(execRunner(), logger),
    exportBus: (d) =>
      startScope1Export(d, {
        network: c.network.name,
        iface: c.wireguard.interface,
        logger: logger.child("dbus"),
      }),
  });
}

export const askDaemon = (
  c: EdgeConfig,
  req: ControlRequest,
  timeoutMs?: number,
): Promise<Record<string, unknown>> => controlRequest(controlSocketFor(c), req, timeoutMs);
