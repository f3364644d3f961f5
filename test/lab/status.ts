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

/**
 * A proven pair still carried by the hub until its announced switch to
 * direct (docs/hubs.md, "Hub to direct without loss"): status says so in the reason.
 */
export const movingOffHub = (p: PeerStatus): boolean =>
  p.path === "hub" && p.reason === "direct path proven: moving off the hub";

/** What each member's daemon says, by member name. */
export type MeshView = ReadonlyMap<string, ScopeStatus>;

const viewOf = (mesh: MeshView, viewer: string, peer: string): PeerStatus | undefined =>
  mesh.get(viewer)?.peers.find((p) => p.name === peer);

/** Both sides see the pair direct. */
export const bothDirect = (mesh: MeshView, a: string, b: string): boolean =>
  viewOf(mesh, a, b)?.path === "direct" && viewOf(mesh, b, a)?.path === "direct";

/**
 * The pair a ↔ b is usable both ways (issue 10: "every pair direct or via
 * hub"): both sides route it the same way and that way works — both
 * direct, or both through the same hub, which both have a direct path to
 * (and it to them). One side direct while the other still sends via the
 * hub is not usable: WireGuard drops what arrives from the hub with a
 * source the receiver routes to the direct peer (docs/hubs.md). Whether a
 * side still tries direct beside the hub (not settled) does not matter:
 * the hub carries the pair meanwhile.
 */
export function pairReachable(mesh: MeshView, a: string, b: string): boolean {
  if (bothDirect(mesh, a, b)) return true;
  const ab = viewOf(mesh, a, b);
  const ba = viewOf(mesh, b, a);
  const hub = ab?.hub ?? null;
  return (
    ab?.path === "hub" &&
    ba?.path === "hub" &&
    hub !== null &&
    ba.hub === hub &&
    bothDirect(mesh, a, hub) &&
    bothDirect(mesh, b, hub)
  );
}
