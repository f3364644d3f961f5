/**
 * The NetworkManager client: one bus connection, kept alive.
 *
 * - Calls go to org.freedesktop.NetworkManager; every failure comes out as
 *   an NmError (errors.ts), with NM's D-Bus error name.
 * - Signal watches are registered with `watch()`, which resolves only once
 *   the bus daemon has the match rule (bus.ts). Watches survive a
 *   reconnect: they are re-added on every new connection before anyone is
 *   told about it.
 * - NetworkManager restart: NameOwnerChanged for org.freedesktop.NetworkManager
 *   (watched from the first connection on) → listeners get "nm-stopped"
 *   (old owner gone) and "nm-started" (new owner). Every object path NM
 *   handed out before is then stale: profiles and active connections get
 *   new paths, so users of the client look them up again.
 * - Bus restart (the socket ends): the client reconnects with back-off on
 *   the injected clock and then says "bus-reconnected" (NM may have
 *   restarted as well: same treatment as "nm-started"). A call made while
 *   disconnected tries to connect once and fails as `unavailable`.
 * - close() ends the connection and every timer; the client is then dead.
 */
import { systemClock, type Clock, type TimerId } from "../src/core/clock.js";
import type { LogSink } from "../src/core/logger.js";
import { silentLogger } from "../src/core/logger.js";
import { Variant } from "dbus-next";
import {
  DBUS_NAME,
  DBUS_PATH,
  PROPERTIES,
  type BusConnection,
  type BusFactory,
  type Signal,
  type SignalMatch,
} from "./bus.js";
import { NmError, nmError } from "./errors.js";

export const NM_NAME = "org.freedesktop.NetworkManager";
export const NM_PATH = "/org/freedesktop/NetworkManager";

export type NmLifecycleEvent = "nm-started" | "nm-stopped" | "bus-reconnected";

/** Back-off between reconnect attempts after the bus went away (ms); the last value repeats. */
export const RECONNECT_BACKOFF_MS = [100, 500, 1000, 2000, 5000] as const;

interface Watch {
  match: SignalMatch;
  handler: (s: Signal) => void;
  unsubscribe?: () => Promise<void>;
}

export interface NmClientOptions {
  clock?: Clock;
  logger?: LogSink;
}

export class NmClient {
  /** What this NetworkManager turned out not to support, learned from its answers (connection.ts). */
  readonly quirks = { update2NoReapply: true };
  private bus: BusConnection | undefined;
  private connecting: Promise<BusConnection> | undefined;
  private readonly watches = new Set<Watch>();
  private readonly lifecycle = new Set<(e: NmLifecycleEvent) => void>();
  private reconnectTimer: TimerId | undefined;
  private attempt = 0;
  private closed = false;
  private readonly clock: Clock;
  private readonly log: LogSink;

  constructor(
    private readonly factory: BusFactory,
    options: NmClientOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? silentLogger;
  }

  /** A method call on NetworkManager; `what` prefixes the error message. */
  async call(path: string, iface: string, member: string, signature: string, body: unknown[], what: string) {
    return this.callOn(NM_NAME, path, iface, member, signature, body, what);
  }

  /**
   * A lookup that NM answers with an error when there is nothing to find
   * (GetConnectionByUuid, GetDeviceByIpIface): undefined when the error
   * name matches `absent`, else like call().
   */
  async lookup(
    path: string,
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
    absent: RegExp,
  ): Promise<unknown | undefined> {
    try {
      return (await this.call(path, iface, member, signature, body, `${member} ${body.join(" ")}`))[0];
    } catch (err) {
      if (err instanceof NmError && err.dbusName !== undefined && absent.test(err.dbusName)) return undefined;
      throw err;
    }
  }

  /** org.freedesktop.DBus.Properties.Get, unwrapped from its Variant. */
  async getProperty(path: string, iface: string, name: string): Promise<unknown> {
    const [v] = await this.call(path, PROPERTIES, "Get", "ss", [iface, name], `get ${name}`);
    return v instanceof Variant ? v.value : v;
  }

  /** Is org.freedesktop.NetworkManager on the bus now? */
  async nmRunning(): Promise<boolean> {
    const [has] = await this.callOn(
      DBUS_NAME,
      DBUS_PATH,
      DBUS_NAME,
      "NameHasOwner",
      "s",
      [NM_NAME],
      "NameHasOwner",
    );
    return has === true;
  }

  /**
   * Watches a NetworkManager signal from now on, across reconnects. Resolves
   * once the match rule is in place (signals sent after that are seen).
   */
  async watch(match: Omit<SignalMatch, "sender">, handler: (s: Signal) => void): Promise<() => void> {
    const w: Watch = { match: { ...match, sender: NM_NAME }, handler };
    this.watches.add(w);
    try {
      const bus = await this.ensureBus();
      if (!w.unsubscribe) w.unsubscribe = await bus.subscribe(w.match, handler);
    } catch (err) {
      this.watches.delete(w);
      throw nmError(`watch ${match.interface}.${match.member}`, err);
    }
    return () => {
      this.watches.delete(w);
      void w.unsubscribe?.();
    };
  }

  onLifecycle(listener: (e: NmLifecycleEvent) => void): () => void {
    this.lifecycle.add(listener);
    return () => this.lifecycle.delete(listener);
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer !== undefined) this.clock.clearTimer(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.bus?.close();
    this.bus = undefined;
    this.watches.clear();
    this.lifecycle.clear();
  }

  private async callOn(
    destination: string,
    path: string,
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
    what: string,
  ): Promise<unknown[]> {
    try {
      const bus = await this.ensureBus();
      return await bus.call({ destination, path, interface: iface, member, signature, body });
    } catch (err) {
      throw nmError(what, err);
    }
  }

  private ensureBus(): Promise<BusConnection> {
    if (this.closed) return Promise.reject(new Error("NetworkManager client is closed"));
    if (this.bus) return Promise.resolve(this.bus);
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<BusConnection> {
    const bus = await this.factory();
    try {
      // NM restarts are seen from the first connection on.
      await bus.subscribe(
        {
          sender: DBUS_NAME,
          path: DBUS_PATH,
          interface: DBUS_NAME,
          member: "NameOwnerChanged",
          arg0: NM_NAME,
        },
        (s) => this.nameOwnerChanged(s),
      );
      for (const w of this.watches) w.unsubscribe = await bus.subscribe(w.match, w.handler);
    } catch (err) {
      bus.close();
      throw err;
    }
    if (this.closed) {
      bus.close();
      throw new Error("NetworkManager client is closed");
    }
    bus.onClose((cause) => this.lost(bus, cause));
    this.bus = bus;
    return bus;
  }

  private nameOwnerChanged(s: Signal): void {
    const [, oldOwner, newOwner] = s.body as [string, string, string];
    if (oldOwner) this.emit("nm-stopped");
    if (newOwner) this.emit("nm-started");
  }

  private lost(bus: BusConnection, cause: Error): void {
    if (this.bus !== bus || this.closed) return;
    this.bus = undefined;
    for (const w of this.watches) w.unsubscribe = undefined;
    this.log.warn("networkmanager: D-Bus connection lost, reconnecting", { error: cause.message });
    this.attempt = 0;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = RECONNECT_BACKOFF_MS[Math.min(this.attempt, RECONNECT_BACKOFF_MS.length - 1)]!;
    this.attempt++;
    this.reconnectTimer = this.clock.setTimer(delay, () => {
      this.reconnectTimer = undefined;
      this.ensureBus().then(
        () => {
          this.log.info("networkmanager: D-Bus connection back");
          this.emit("bus-reconnected");
        },
        (err: Error) => {
          if (this.closed) return;
          this.log.debug("networkmanager: reconnect failed", { error: err.message, attempt: this.attempt });
          this.scheduleReconnect();
        },
      );
    });
  }

  private emit(e: NmLifecycleEvent): void {
    for (const l of [...this.lifecycle]) l(e);
  }
}
