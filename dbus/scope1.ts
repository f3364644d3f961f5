/**
 * cc.ltgc.Scope1: Scope's own D-Bus interface on the system bus, so
 * desktop tools (a GNOME extension, a tray icon, `busctl`) can show the
 * mesh without root. docs/dbus.md describes it for their authors.
 *
 * One daemon runs per network, so each owns its own well-known name,
 * cc.ltgc.Scope1.NET (scope1BusName), and exports one object,
 * /cc/ltgc/Scope1, with this interface:
 *
 *   GetStatus() → a{sv}   network s, state s, paused b, interface s,
 *                         addresses as, backend s
 *   GetPeers()  → aa{sv}  public-key s, name s, address s, path s
 *                         ("direct" | "hub" | "relay" | "pending" | "none"), endpoint s,
 *                         latency-ms d, last-handshake-ms t, rx-bytes t,
 *                         tx-bytes t (absent keys: not known)
 *   Pause(), Resume()     the admin pause of the engine; refused by the
 *                         bus policy (dbus/cc.ltgc.Scope1.conf) unless the
 *                         caller is root or in group `scope`
 *   signal StateChanged(s state, b paused)
 *
 * Methods only, no D-Bus properties: the bus policy can then open the two
 * read methods to everyone by interface and member alone, without opening
 * org.freedesktop.DBus.Properties of other services (per-network names rule
 * out a policy by destination on dbus-daemon before send_destination_prefix).
 * Nothing secret is ever exposed: public keys only.
 */
import { DBusError, Variant, interface as dbusInterface, type MessageBus } from "dbus-next";

export const SCOPE1_INTERFACE = "cc.ltgc.Scope1";
export const SCOPE1_PATH = "/cc/ltgc/Scope1";

/** The daemon's bus name for a network: "-" becomes "_", a leading digit gets "_" (D-Bus name rules). */
export function scope1BusName(network: string): string {
  const elem = network.replace(/-/g, "_");
  return `${SCOPE1_INTERFACE}.${/^\d/.test(elem) ? `_${elem}` : elem}`;
}

export type PeerPath = "direct" | "hub" | "relay" | "pending" | "none";

export interface Scope1Status {
  network: string;
  /** The daemon's state name, e.g. "joining", "running", "paused". */
  state: string;
  paused: boolean;
  interface?: string;
  addresses: string[];
  backend?: string;
}

export interface Scope1Peer {
  publicKey: string;
  name?: string;
  /** Tunnel address, e.g. "10.88.0.7". */
  address?: string;
  path: PeerPath;
  endpoint?: string;
  latencyMs?: number;
  lastHandshakeMs?: number;
  rxBytes?: number;
  txBytes?: number;
}

/** What the daemon gives the interface; Pause/Resume reject with a ScopeError to refuse. */
export interface Scope1Provider {
  status(): Scope1Status;
  peers(): Scope1Peer[];
  pause(): Promise<void>;
  resume(): Promise<void>;
}

type Dict = Record<string, Variant>;

export function statusDict(s: Scope1Status): Dict {
  const d: Dict = {
    network: new Variant("s", s.network),
    state: new Variant("s", s.state),
    paused: new Variant("b", s.paused),
    addresses: new Variant("as", s.addresses),
  };
  if (s.interface !== undefined) d.interface = new Variant("s", s.interface);
  if (s.backend !== undefined) d.backend = new Variant("s", s.backend);
  return d;
}

export function peerDict(p: Scope1Peer): Dict {
  const d: Dict = { "public-key": new Variant("s", p.publicKey), path: new Variant("s", p.path) };
  if (p.name !== undefined) d.name = new Variant("s", p.name);
  if (p.address !== undefined) d.address = new Variant("s", p.address);
  if (p.endpoint !== undefined) d.endpoint = new Variant("s", p.endpoint);
  if (p.latencyMs !== undefined) d["latency-ms"] = new Variant("d", p.latencyMs);
  // uint64 on the wire: BigInt for dbus-next.
  if (p.lastHandshakeMs !== undefined) d["last-handshake-ms"] = new Variant("t", BigInt(p.lastHandshakeMs));
  if (p.rxBytes !== undefined) d["rx-bytes"] = new Variant("t", BigInt(p.rxBytes));
  if (p.txBytes !== undefined) d["tx-bytes"] = new Variant("t", BigInt(p.txBytes));
  return d;
}

const failed = (what: string, err: unknown): DBusError =>
  new DBusError(
    `${SCOPE1_INTERFACE}.Error.${(err as { code?: string }).code === "forbidden" ? "PermissionDenied" : "Failed"}`,
    `${what}: ${err instanceof Error ? err.message : String(err)}`,
  );

export class Scope1Interface extends dbusInterface.Interface {
  constructor(private readonly provider: Scope1Provider) {
    super(SCOPE1_INTERFACE);
  }

  GetStatus(): Dict {
    return statusDict(this.provider.status());
  }

  GetPeers(): Dict[] {
    return this.provider.peers().map(peerDict);
  }

  async Pause(): Promise<void> {
    await this.provider.pause().catch((err: unknown) => {
      throw failed("Pause", err);
    });
  }

  async Resume(): Promise<void> {
    await this.provider.resume().catch((err: unknown) => {
      throw failed("Resume", err);
    });
  }

  /** The signal: call it (or notify()) and dbus-next sends StateChanged(state, paused). */
  StateChanged(state: string, paused: boolean): [string, boolean] {
    return [state, paused];
  }

  /** Sends StateChanged with the provider's current status. */
  notify(): void {
    const s = this.provider.status();
    this.StateChanged(s.state, s.paused);
  }
}

Scope1Interface.configureMembers({
  methods: {
    GetStatus: { outSignature: "a{sv}" },
    GetPeers: { outSignature: "aa{sv}" },
    Pause: {},
    Resume: {},
  },
  signals: { StateChanged: { signature: "sb" } },
});

/**
 * Exports the interface at /cc/ltgc/Scope1 and takes the network's name.
 * The daemon calls this with its system bus; close() gives both back.
 */
export async function exportScope1(
  bus: MessageBus,
  network: string,
  provider: Scope1Provider,
): Promise<{ iface: Scope1Interface; name: string; close(): Promise<void> }> {
  const iface = new Scope1Interface(provider);
  const name = scope1BusName(network);
  bus.export(SCOPE1_PATH, iface);
  // DO_NOT_QUEUE: a second daemon for the same network must fail, not wait.
  const reply = await bus.requestName(name, 0x4);
  if (reply !== 1 && reply !== 4) {
    bus.unexport(SCOPE1_PATH, iface);
    throw new Error(`D-Bus name ${name} is taken (another scope daemon for ${network}?)`);
  }
  return {
    iface,
    name,
    async close() {
      bus.unexport(SCOPE1_PATH, iface);
      await bus.releaseName(name).catch(() => undefined);
    },
  };
}
