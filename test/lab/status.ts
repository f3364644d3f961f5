// The `scope status --json` shape the lab depends on, and predicates over it.
// Kept apart from the daemon's own types on purpose: the lab checks the
// published contract, so a change to it must show up here as a test change.

export type Path = "direct" | "hub" | "pending" | "none";

export interface PeerStatus {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly path: Path;
  /** "ip:port" or "[v6]:port". */
  readonly endpoint: string | null;
  readonly family: "ipv4" | "ipv6" | null;
  readonly latencyMs: number | null;
  readonly lastHandshakeMs: number | null;
  /** Why the peer is not direct; null when direct. */
  readonly reason: string | null;
  readonly settled: boolean;
  /** PSK epoch, since when (epoch ms) and rotations so far; null without a PSK. */
  readonly psk: { readonly epoch: number; readonly since: number; readonly rotations: number } | null;
  /** The hub's name while the path is `hub`. */
  readonly hub: string | null;
}

export interface ScopeStatus {
  readonly network: string;
  readonly self: {
    readonly id: string;
    readonly name: string;
    readonly address: string;
    readonly listenPort: number;
    readonly nat: unknown;
    readonly role: "edge" | "hub";
    /** On a hub: the edges it relays for. */
    readonly relaysFor?: readonly string[];
    /** On an edge with hubs: the hub it routes through and its standby (null: none). */
    readonly hub?: string | null;
    readonly standby?: string | null;
  };
  readonly peers: readonly PeerStatus[];
}

/** Settled as the acceptance means it: direct, or not direct with a reason. */
export function isSettled(p: PeerStatus): boolean {
  if (!p.settled || p.path === "pending") return false;
  return p.path === "direct" || (p.reason !== null && p.reason.trim() !== "");
}

export function peerNamed(s: ScopeStatus, name: string): PeerStatus | undefined {
  return s.peers.find((p) => p.name === name);
}

/** True when `s` lists exactly the peers `names` (in any order) and each is settled. */
export function allSettled(s: ScopeStatus, names: readonly string[]): boolean {
  if (s.peers.length !== names.length) return false;
  return names.every((n) => {
    const p = peerNamed(s, n);
    return p !== undefined && isSettled(p);
  });
}
