/**
 * The Backend seam (DESIGN §7). The core computes a desired interface and
 * peer set; a backend makes the system match it with as few changes as
 * possible and reports live peer stats. Built-in backends live in
 * plugins/NAME/, third-party ones are loaded by name (docs/plugins.md) and
 * must export a BackendPlugin with the same apiVersion.
 *
 * Keys are WireGuard base64 strings. privateKey and presharedKey are
 * secrets: a backend passes them by stdin, file or socket, never on argv,
 * and never logs them.
 */
import type { LogSink } from "./logger.js";

export const BACKEND_API_VERSION = 1;

export type BackendName = "wg" | "networkmanager" | "networkd" | (string & {});

export interface DesiredInterface {
  /** Interface name, at most 15 bytes (IFNAMSIZ). */
  name: string;
  privateKey: string;
  listenPort: number;
  /** Tunnel addresses with prefix length, e.g. "10.88.0.5/16", "fd8a::5/64". */
  addresses: string[];
  mtu?: number;
}

export interface DesiredPeer {
  publicKey: string;
  /** "203.0.113.7:51820" or "[2001:db8::7]:51820"; absent while no path is known. */
  endpoint?: string;
  /** CIDRs routed to this peer: its /32 (/128) when direct, the network CIDR for a hub. */
  allowedIps: string[];
  /** Seconds; 0 or absent disables. */
  persistentKeepalive?: number;
  presharedKey?: string;
}

/** The whole truth for one interface. apply() of the same value twice changes nothing. */
export interface DesiredState {
  iface: DesiredInterface;
  peers: DesiredPeer[];
}

export interface PeerStats {
  publicKey: string;
  /** The endpoint WireGuard uses now: after roaming this is what the peer really sends from. */
  endpoint?: string;
  /** Epoch ms of the last completed handshake; absent if none. */
  lastHandshakeMs?: number;
  rxBytes: number;
  txBytes: number;
}

export interface ApplyResult {
  /** Human-readable changes, innernet style ("peer AbCd… endpoint 1.2.3.4:1 => 5.6.7.8:2"); empty when nothing changed. Never a secret. */
  changes: string[];
  /** This apply brought the interface into existence (a caller that fails right after may remove it again). */
  created?: boolean;
}

export interface ProbeResult {
  usable: boolean;
  /** Why not, or which flavour ("kernel", "wireguard-go"). */
  detail: string;
}

export interface Backend {
  readonly name: BackendName;
  /** Can this backend work on this host now? Cheap, no side effects. */
  probe(): Promise<ProbeResult>;
  /** Reconcile the system with desired. Idempotent; sends only the difference. */
  apply(desired: DesiredState): Promise<ApplyResult>;
  /** Live per-peer stats of the managed interface; empty if the interface is absent. */
  stats(): Promise<PeerStats[]>;
  /**
   * Stop managing. With remove, take the interface down and delete what the
   * backend created (files, profiles); without, leave the tunnel running so a
   * daemon restart loses no packet.
   */
  close(options?: { remove?: boolean }): Promise<void>;
}

/** Optional ability: start a fresh handshake now instead of waiting for WireGuard's 5 s retry. */
export interface HandshakeTrigger {
  /**
   * `seenHandshakeMs`: the peer's last handshake the caller knows of (epoch
   * ms, 0 for none). If the live peer has a newer one, nothing is done: the
   * trigger re-creates the peer and would throw away a session the caller
   * has not seen yet.
   */
  triggerHandshake(publicKey: string, seenHandshakeMs?: number): Promise<void>;
}

export const canTriggerHandshake = (b: Backend): b is Backend & HandshakeTrigger =>
  typeof (b as Partial<HandshakeTrigger>).triggerHandshake === "function";

/** Optional ability: the user can switch the tunnel off outside Scope (NetworkManager); the daemon follows. */
export interface ActiveStateSource {
  onActiveChange(listener: (active: boolean) => void): () => void;
}

export const hasActiveState = (b: Backend): b is Backend & ActiveStateSource =>
  typeof (b as Partial<ActiveStateSource>).onActiveChange === "function";

/**
 * Optional ability: what the backend made can be deleted outside Scope
 * (NetworkManager's profile, by nmcli or GNOME Settings). Such a deletion is
 * the user's word: the backend reports it (apply fails, the active state goes
 * false) and makes the thing again only after allowRecreate(), which
 * `scope recreate` calls.
 */
export interface Recreatable {
  allowRecreate(): Promise<void>;
}

export const canRecreate = (b: Backend): b is Backend & Recreatable =>
  typeof (b as Partial<Recreatable>).allowRecreate === "function";

/** What a backend logs through; the plugin API keeps this name. */
export type BackendLogger = LogSink;

export interface BackendContext {
  /** Network name, e.g. "corp": used for file and profile names. */
  network: string;
  /** Where the backend may keep state (0700), e.g. /var/lib/scope/corp. */
  stateDir: string;
  logger: BackendLogger;
  /** Backend-specific settings from the [backend] section of NET.conf. */
  options: Record<string, string>;
}

export interface BackendPlugin {
  apiVersion: typeof BACKEND_API_VERSION;
  name: BackendName;
  create(ctx: BackendContext): Backend;
}
