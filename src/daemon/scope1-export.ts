/**
 * The daemon on the system bus: it serves cc.ltgc.Scope1 (dbus/scope1.ts,
 * docs/dbus.md) for its network, so desktop tools and `busctl` read the
 * mesh without root, and root or group `scope` pause and resume it.
 *
 * - Served only where the bus policy (dbus/cc.ltgc.Scope1.conf) is
 *   installed: without it the bus daemon refuses the name anyway, and the
 *   policy is the only gate on Pause/Resume. A lab or a development host
 *   without the package so never touches the system bus.
 * - Pause/Resume are the engine's admin pause (src/core/engine/admin.ts),
 *   never the backend's switch: NetworkManager's profile stays as the user
 *   set it.
 * - StateChanged goes out when the state name or the paused flag changes;
 *   the daemon calls changed() after every engine step and lifecycle move,
 *   which costs a comparison of two values.
 * - The bus is optional: a failure to connect or to take the name is one
 *   warning, and the daemon runs on. A bus daemon restart is not followed
 *   (it restarts every system service with it).
 */
import { existsSync } from "node:fs";
import type { MessageBus } from "dbus-next";
import type { AdminMode } from "../core/engine/admin.js";
import { ScopeError } from "../core/errors.js";
import type { Logger } from "../log.js";
import type { Scope1Interface, Scope1Peer, Scope1Status } from "../../dbus/scope1.js";
import type { Lifecycle, Status } from "./runtime.js";

/** Where dbus-daemon and dbus-broker read system bus policies from (package, admin). */
export const SCOPE1_POLICY_FILES = [
  "/usr/share/dbus-1/system.d/cc.ltgc.Scope1.conf",
  "/etc/dbus-1/system.d/cc.ltgc.Scope1.conf",
];

/** What the export needs of the daemon (runtime.ts's Daemon has it). */
export interface Scope1Daemon {
  readonly lifecycle: Lifecycle;
  status(): Status;
  /** The engine's admin mode; undefined before the engine exists. */
  adminMode(): AdminMode | undefined;
  /** The tunnel addresses with prefix length; empty before the join. */
  tunnelAddresses(): string[];
  /** The engine's admin pause; throws a ScopeError when the daemon cannot take it now. */
  adminPause(paused: boolean): void;
}

export interface Scope1Options {
  network: string;
  iface: string;
  logger: Logger;
  /** The system bus (default: dbus-next's). */
  bus?: () => MessageBus;
  /** Whether the bus policy is installed (default: one of SCOPE1_POLICY_FILES exists). */
  policyInstalled?: () => boolean;
}

export interface Scope1Export {
  /** Something may have changed: StateChanged goes out if the state or paused flag did. */
  changed(): void;
  /** Gives the name and the connection back. */
  close(): Promise<void>;
}

/** The state name cc.ltgc.Scope1 shows: the lifecycle, and once a member the admin mode. */
export function scope1State(lifecycle: Lifecycle, admin: AdminMode | undefined): string {
  if (lifecycle === "starting") return "joining";
  if (lifecycle !== "member") return lifecycle;
  return admin === undefined || admin === "active" ? "running" : admin;
}

export function scope1Status(d: Scope1Daemon, network: string, iface: string): Scope1Status {
  const s = d.status();
  return {
    network,
    state: scope1State(d.lifecycle, s.admin),
    paused: s.admin !== "active",
    interface: iface,
    addresses: d.tunnelAddresses(),
    backend: s.backend,
  };
}

export function scope1Peers(s: Status): Scope1Peer[] {
  return s.peers.map((p) => ({
    publicKey: p.publicKey,
    name: p.name,
    address: p.address,
    path: p.path,
    ...(p.endpoint !== null && { endpoint: p.endpoint }),
    ...(p.latencyMs !== null && { latencyMs: p.latencyMs }),
    ...(p.lastHandshakeMs !== null && { lastHandshakeMs: p.lastHandshakeMs }),
  }));
}

const policyFileExists = (): boolean => SCOPE1_POLICY_FILES.some((f) => existsSync(f));

/** Starts serving in the background and returns at once; undefined when the policy is not installed. */
export function startScope1Export(d: Scope1Daemon, o: Scope1Options): Scope1Export | undefined {
  if (!(o.policyInstalled ?? policyFileExists)()) {
    o.logger.debug("cc.ltgc.Scope1 not served: its bus policy is not installed", {
      files: SCOPE1_POLICY_FILES,
    });
    return undefined;
  }
  let bus: MessageBus | undefined;
  let iface: Scope1Interface | undefined;
  let release: (() => Promise<void>) | undefined;
  let closed = false;
  let sent = "";
  // Cheap (no peer list): it runs after every engine step.
  const key = (): string => scope1State(d.lifecycle, d.adminMode());
  void (async () => {
    // Loaded here, not at start-up: dbus-next is ~90 ms of imports that a daemon without the policy never needs.
    const [{ exportScope1 }, dbus] = await Promise.all([import("../../dbus/scope1.js"), import("dbus-next")]);
    if (closed) return;
    bus = (o.bus ?? dbus.systemBus)();
    // dbus-next reports a lost or refused connection as an event: without a listener it would throw.
    bus.on("error", (err: Error) => o.logger.warn("system bus", { error: err.message }));
    const exported = await exportScope1(bus, o.network, {
      status: () => scope1Status(d, o.network, o.iface),
      peers: () => scope1Peers(d.status()),
      pause: async () => d.adminPause(true),
      resume: async () => d.adminPause(false),
    });
    if (closed) return exported.close();
    iface = exported.iface;
    release = exported.close;
    sent = key();
    o.logger.info("serving cc.ltgc.Scope1 on the system bus", { name: exported.name });
  })().catch((err: Error) => {
    if (!closed) o.logger.warn("cc.ltgc.Scope1 not served", { error: err.message });
  });
  return {
    changed() {
      if (!iface || closed) return;
      const now = key();
      if (now === sent) return;
      sent = now;
      iface.notify();
    },
    /** Never waits for a bus that does not answer: a shutdown must not hang on it. */
    async close() {
      if (closed) return;
      closed = true;
      await release?.().catch(() => undefined);
      bus?.disconnect();
    },
  };
}

/** The refusal Pause/Resume give while the daemon is not (yet, or any more) a member. */
export const notMember = (lifecycle: Lifecycle): ScopeError =>
  new ScopeError("unavailable", `the daemon is ${lifecycle === "starting" ? "still joining" : lifecycle}`);
