/**
 * The routing slice: which peer carries which allowed IPs (DESIGN §5).
 * WireGuard routes by longest prefix: a direct peer carries its own /32
 * (/128), the hub the network CIDR, and a peer that is not direct while a
 * hub exists carries nothing, so its traffic goes via the hub and WireGuard
 * keeps trying its own endpoint through keepalives. A direct path thus
 * overrides the hub route without touching system routes. Later: the tree.
 */
import type { Network, Peer } from "../protocol.js";
import type { PeerState } from "./types.js";

export interface RoutingState {
  /** Peers the admin made hubs (role is the registry's word, never the peer's claim). */
  hubIds: Set<string>;
  /** The hub this edge routes through now, if any. */
  hubId: string | undefined;
}

export const newRoutingState = (): RoutingState => ({ hubIds: new Set(), hubId: undefined });

/** Keeps hubIds in step with the peer set: call on every add, update and removal. */
export function noteRole(r: RoutingState, peer: Peer, present: boolean): void {
  if (present && peer.role === "hub") r.hubIds.add(peer.id);
  else r.hubIds.delete(peer.id);
}

/**
 * The hub to route through: a direct hub, lowest latency first; while none
 * is direct yet, a hub still being tried, so a newcomer reaches everyone
 * through the hub from its first apply (its handshake toward the hub is
 * under way; WireGuard queues what it sends meanwhile). Looks only at hubs.
 * selfIsHub: hubs route nothing through others.
 */
export function chooseHub(
  r: RoutingState,
  peers: ReadonlyMap<string, PeerState>,
  selfIsHub: boolean,
  direct: (ps: PeerState) => boolean,
  latency: (ps: PeerState) => number | null,
): string | undefined {
  if (selfIsHub) return undefined;
  const best = (usable: (ps: PeerState) => boolean): PeerState | undefined => {
    let out: PeerState | undefined;
    for (const id of r.hubIds) {
      const ps = peers.get(id);
      if (!ps || !usable(ps)) continue;
      const [l, b] = [latency(ps) ?? Infinity, out ? (latency(out) ?? Infinity) : Infinity];
      if (!out || l < b || (l === b && ps.peer.id < out.peer.id)) out = ps;
    }
    return out;
  };
  return (best(direct) ?? best((ps) => !ps.paths.settled))?.peer.id;
}

/** A hub's reports about third peers are trusted (it sees every edge's WireGuard traffic); a member's are not. */
export const isHub = (r: RoutingState, peerId: string): boolean => r.hubIds.has(peerId);

const hostRoutes = (p: Peer): string[] => [`${p.address}/32`, ...(p.address6 ? [`${p.address6}/128`] : [])];

/**
 * The allowed IPs of one peer, given the current hub. viaHub: a pair that
 * is not direct may use the hub now (the seed profile tries direct alone
 * for its first 60 s, keeping the peer's own routes meanwhile).
 */
export function allowedIpsOf(
  r: RoutingState,
  ps: PeerState,
  network: Network | undefined,
  direct: boolean,
  viaHub = true,
): string[] {
  if (ps.peer.id === r.hubId && network) return [network.cidr, ...(network.cidr6 ? [network.cidr6] : [])];
  if (r.hubId !== undefined && !direct && viaHub) return [];
  return hostRoutes(ps.peer);
}
