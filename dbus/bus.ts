/**
 * The bus seam: the few things Scope's NetworkManager client needs from a
 * D-Bus connection, so the client runs the same over dbus-next's system
 * bus and over the in-memory NetworkManager of fake-nm.ts.
 *
 * Why the low-level Message API of dbus-next and not its proxy objects:
 * - every call carries an explicit signature. A proxy guesses nothing
 *   either, but it needs an Introspect round trip per object first, and
 *   NetworkManager's object paths change with every restart;
 * - a signal match is an awaited org.freedesktop.DBus.AddMatch, so once
 *   `subscribe()` resolves the bus daemon delivers the signal (a proxy's
 *   `on("signal")` adds its match in the background: a StateChanged sent
 *   right after it is missed);
 * - replies keep dbus-next's types: `t` is a BigInt (setBigIntCompat is
 *   left off), `ay` a Buffer, `a{sv}` an object of Variants.
 */
import { DBusError, Message, MessageType, systemBus } from "dbus-next";

export const DBUS_NAME = "org.freedesktop.DBus";
export const DBUS_PATH = "/org/freedesktop/DBus";
export const PROPERTIES = "org.freedesktop.DBus.Properties";

export interface DBusCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  /** The D-Bus signature of body, always given (empty for none). */
  signature: string;
  body: unknown[];
}

export interface SignalMatch {
  /** Well-known name the signal must come from. */
  sender: string;
  interface: string;
  member: string;
  /** Absent: any object. */
  path?: string;
  /** First argument (NameOwnerChanged: the name). */
  arg0?: string;
}

export interface Signal {
  path: string;
  interface: string;
  member: string;
  body: unknown[];
}

/** A D-Bus error reply: `name` is the error name NetworkManager or the bus daemon sent. */
export class DBusErrorReply extends Error {
  constructor(
    readonly errorName: string,
    readonly text: string,
  ) {
    super(`${errorName}: ${text}`);
    this.name = "DBusErrorReply";
  }
}

export interface BusConnection {
  /**
   * One method call; resolves with the reply body, rejects with
   * DBusErrorReply for an error reply and with a plain Error when the
   * connection is gone.
   */
  call(c: DBusCall): Promise<unknown[]>;
  /**
   * Adds the match rule on the bus daemon and resolves once it is in
   * place: from then on every matching signal reaches `handler`, in order.
   * The returned function removes the rule again.
   */
  subscribe(match: SignalMatch, handler: (s: Signal) => void): Promise<() => Promise<void>>;
  /** Called once when the connection ends (bus daemon restarted, socket closed); not after close(). */
  onClose(listener: (cause: Error) => void): void;
  /** Ends the connection; pending calls fail. Idempotent. */
  close(): void;
}

/** Opens a new connection (the system bus in production). */
export type BusFactory = () => Promise<BusConnection>;

const quote = (v: string): string => `'${v.replace(/'/g, "'\\''")}'`;

/** The match rule text for org.freedesktop.DBus.AddMatch. */
export function matchRule(m: SignalMatch): string {
  const parts = [`type='signal'`, `sender=${quote(m.sender)}`, `interface=${quote(m.interface)}`];
  parts.push(`member=${quote(m.member)}`);
  if (m.path !== undefined) parts.push(`path=${quote(m.path)}`);
  if (m.arg0 !== undefined) parts.push(`arg0=${quote(m.arg0)}`);
  return parts.join(",");
}

const matches = (m: SignalMatch, s: Signal): boolean =>
  m.interface === s.interface &&
  m.member === s.member &&
  (m.path === undefined || m.path === s.path) &&
  (m.arg0 === undefined || s.body[0] === m.arg0);

interface RawBus {
  call(msg: Message): Promise<Message | null>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  disconnect(): void;
  _connection?: { on(event: string, listener: () => void): unknown };
}

/** BusConnection over a dbus-next MessageBus. */
export class DBusNextConnection implements BusConnection {
  private readonly subs = new Set<{ match: SignalMatch; handler: (s: Signal) => void }>();
  private closeListeners: ((cause: Error) => void)[] = [];
  private closed = false;

  constructor(private readonly bus: RawBus) {
    bus.on("message", (raw) => {
      const msg = raw as Message;
      if (msg.type !== MessageType.SIGNAL) return;
      const s: Signal = {
        path: msg.path,
        interface: msg.interface,
        member: msg.member,
        body: msg.body ?? [],
      };
      for (const sub of this.subs) if (matches(sub.match, s)) sub.handler(s);
    });
    const ended = (cause: Error) => {
      if (this.closed) return;
      this.closed = true;
      for (const l of this.closeListeners) l(cause);
      this.closeListeners = [];
    };
    bus.on("error", (err) => ended(err instanceof Error ? err : new Error(String(err))));
    // dbus-next forwards stream errors but not a clean end of the socket
    // (the bus daemon restarting); its connection object does emit "end".
    bus._connection?.on("end", () => ended(new Error("D-Bus connection ended")));
  }

  async call(c: DBusCall): Promise<unknown[]> {
    if (this.closed) throw new Error("D-Bus connection is closed");
    const msg = new Message({ ...c, body: c.body });
    try {
      const reply = await this.bus.call(msg);
      return reply?.body ?? [];
    } catch (err) {
      if (err instanceof DBusError) throw new DBusErrorReply(err.type, err.text);
      throw err;
    }
  }

  async subscribe(match: SignalMatch, handler: (s: Signal) => void): Promise<() => Promise<void>> {
    const sub = { match, handler };
    this.subs.add(sub);
    const rule = matchRule(match);
    const daemon = (member: string): DBusCall => ({
      destination: DBUS_NAME,
      path: DBUS_PATH,
      interface: DBUS_NAME,
      member,
      signature: "s",
      body: [rule],
    });
    try {
      await this.call(daemon("AddMatch"));
    } catch (err) {
      this.subs.delete(sub);
      throw err;
    }
    return async () => {
      this.subs.delete(sub);
      if (!this.closed) await this.call(daemon("RemoveMatch")).catch(() => undefined);
    };
  }

  onClose(listener: (cause: Error) => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeListeners = [];
    this.subs.clear();
    this.bus.disconnect();
  }
}

/** The system bus, connected (Hello answered) or rejected. */
export const systemBusFactory: BusFactory = () =>
  new Promise((resolve, reject) => {
    const bus = systemBus() as unknown as RawBus;
    const fail = (err: unknown) => reject(err instanceof Error ? err : new Error(String(err)));
    bus.on("error", fail);
    bus.on("connect", () => resolve(new DBusNextConnection(bus)));
  });
