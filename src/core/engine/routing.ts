/**
 * The routing slice: which peer carries which allowed IPs, and which hub an
 * edge uses (DESIGN §5). WireGuard routes by longest prefix: a direct peer
 * carries its own /32 (/128), the hub the network CIDR, and a peer that is
 * not direct while a hub exists carries nothing, so its traffic goes via the
 * hub and WireGuard keeps trying its own endpoint through keepalives. A
 * direct path thus overrides the hub route without touching system routes.
 *
 * topology = tree: an edge's WireGuard peers are the hubs only (its hub
 * carries the network, its standby nothing); a hub carries, on its entry
 * for another hub, that hub's own addresses and those of the edges attached
 * to it. Edges announce their hub in their registry record (attachedTo), so
 * every hub hears of a move as a peerUpdate.
 */
import type { Network, Peer, PeerUpdate } from "../protocol.js";
import { HUB_MARGIN_MS, HUB_PICK_MS, HUB_SILENT_MS } from "../timers.js";
import { log } from "./log.js";
import { isDirect, lastAnswerAt, latencyOf } from "./paths.js";
import type { EngineEffect, EngineState, PeerState } from "./types.js";

export interface RoutingState {
  /** Peers the admin made hubs (role is the registry's word, never the peer's claim). */
  hubIds: Set<string>;
  /** The hub this edge routes through now, if any. */
  hubId: string | undefined;
  /** The hub this edge moves to when its hub fails. */
  standbyId: string | undefined;
  /** Since when this edge watches its hubs' liveness (there are two or more); undefined while not. */
  watchedSince: number | undefined;
  /** Hubs found silent (dead), so that their return is noticed. */
  silent: Set<string>;
  /** tree, on an edge: the hub last announced to the registry. */
  announced: string | undefined;
  /** The network is a tree, and this host is a hub: copied from the state on every refresh. */
  tree: boolean;
  selfHub: boolean;
  /** tree, on a hub: per other hub, the host routes of the edges attached to it. */
  attached: Map<string, string[]>;
}

export const newRoutingState = (): RoutingState => ({
  hubIds: new Set(),
  hubId: undefined,
  standbyId: undefined,
  watchedSince: undefined,
  silent: new Set(),
  announced: undefined,
  tree: false,
  selfHub: false,
  attached: new Map(),
});

/** Keeps hubIds in step with the peer set: call on every add, update and removal. */
export function noteRole(r: RoutingState, peer: Peer, present: boolean): void {
  if (present && peer.role === "hub") r.hubIds.add(peer.id);
  else r.hubIds.delete(peer.id);
}

/** What an edge knows of one hub: proven (direct), being tried, or unusable (given up, or silent). */
export interface HubFacts {
  id: string;
  state: "proven" | "trying" | "dead";
  rttMs: number | null;
}

const TIER = { proven: 2, trying: 1, dead: 0 } as const;

const byRank = (a: HubFacts, b: HubFacts): number =>
  TIER[b.state] - TIER[a.state] ||
  (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity) ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Clearly faster: half the round trip or less, and HUB_MARGIN_MS less at least. */
const clearlyFaster = (a: HubFacts, b: HubFacts): boolean =>
  a.rttMs !== null && b.rttMs !== null && a.rttMs * 2 <= b.rttMs && b.rttMs - a.rttMs >= HUB_MARGIN_MS;

/**
 * The hub to route through and the standby, with hysteresis. The best hub
 * is proven before tried, then lowest round trip, then lowest id. The
 * current hub is kept while it is usable and no worse a tier than the best;
 * while settling (the edge's first HUB_PICK_MS) a clearly faster hub still
 * takes over, after that only the current hub's failure moves the edge, so
 * a hub that comes back pulls no edge back. With no usable hub at all the
 * current one stays (there is nothing better to route through).
 */
export function pickHub(
  hubs: readonly HubFacts[],
  current: string | undefined,
  settling: boolean,
): { hub: string | undefined; standby: string | undefined } {
  const usable = hubs.filter((h) => h.state !== "dead").sort(byRank);
  const best = usable[0];
  const cur = hubs.find((h) => h.id === current);
  let hub: string | undefined;
  if (!best) hub = cur?.id;
  else if (
    cur &&
    cur.state !== "dead" &&
    TIER[cur.state] >= TIER[best.state] &&
    !(settling && clearlyFaster(best, cur))
  )
    hub = cur.id;
  else hub = best.id;
  return { hub, standby: usable.find((h) => h.id !== hub)?.id };
}

/** An edge with a standby hub watches its hubs' liveness (probes every DIRECT_CHECK_MS, paths.ts). */
const watching = (st: EngineState): boolean => st.self?.role !== "hub" && st.routing.hubIds.size > 1;

/**
 * When a watched hub counts as gone (its daemon or host): no probe answer
 * for HUB_SILENT_MS, since the last answer or since the current attempt
 * began (a hub that went silent is retried, and must not look alive for
 * want of answers to judge by).
 */
function hubSilentAt(st: EngineState, ps: PeerState): number | undefined {
  const since = st.routing.watchedSince;
  const last = lastAnswerAt(ps) ?? ps.paths.since;
  return since === undefined ? undefined : Math.max(last, since) + HUB_SILENT_MS;
}

function hubFacts(st: EngineState, ps: PeerState, now: number): HubFacts {
  const silentAt = hubSilentAt(st, ps);
  const silent = silentAt !== undefined && now >= silentAt;
  const r = st.routing;
  if (silent) r.silent.add(ps.peer.id);
  else if (r.silent.delete(ps.peer.id) && !isDirect(ps, now)) {
    // It answers again (it came back): handshake now rather than at the settled retry pace.
    ps.paths.nextTriggerAt = now;
    st.dirty.peers.add(ps.peer.id);
  }
  const state = silent ? "dead" : isDirect(ps, now) ? "proven" : ps.paths.settled ? "dead" : "trying";
  return { id: ps.peer.id, state, rttMs: latencyOf(ps) };
}

/** The routing slice's future deadline for one peer: when a watched hub would count as silent. */
export function routingDeadlines(st: EngineState, ps: PeerState, out: number[]): void {
  if (!st.routing.hubIds.has(ps.peer.id)) return;
  const at = hubSilentAt(st, ps);
  if (at !== undefined) out.push(at);
}

/**
 * Before every reconcile: the hub and standby (an edge), the attachments
 * (a tree hub), and the announcement of a new hub (a tree edge). Marks
 * every peer dirty when any of it changed the allowed IPs.
 */
export function refreshRouting(st: EngineState, now: number, fx: EngineEffect[]): void {
  const r = st.routing;
  r.tree = st.network?.topology === "tree";
  r.selfHub = st.self?.role === "hub";
  let changed = false;
  if (watching(st) && r.watchedSince === undefined) {
    // Probes toward hubs may sit on the settled grid: bring them forward, or silence means nothing.
    r.watchedSince = now;
    for (const id of r.hubIds) {
      const ps = st.peers.get(id);
      if (ps) ps.probe.nextAt = Math.min(ps.probe.nextAt, now);
    }
  } else if (!watching(st)) r.watchedSince = undefined;
  const hubs = r.selfHub
    ? []
    : [...r.hubIds].flatMap((id) => {
        const ps = st.peers.get(id);
        return ps ? [hubFacts(st, ps, now)] : [];
      });
  const { hub, standby } = pickHub(hubs, r.hubId, now < st.joinedAt + HUB_PICK_MS);
  if (hub !== r.hubId) {
    fx.push(
      log("info", "hub chosen", {
        hub: nameOf(st, hub),
        standby: nameOf(st, standby),
        was: nameOf(st, r.hubId),
      }),
    );
    changed = true;
  }
  r.hubId = hub;
  r.standbyId = standby;
  if (r.tree && r.selfHub) changed = noteAttachments(st) || changed;
  if (changed) st.dirty.all = true;
  if (r.tree && !r.selfHub && hub !== undefined && hub !== r.announced && st.self) {
    r.announced = hub;
    fx.push({ type: "updateSelf", update: { attachedTo: hub } });
  }
}

const nameOf = (st: EngineState, id: string | undefined): string | null =>
  id === undefined ? null : (st.peers.get(id)?.peer.name ?? id);

/** A tree hub's view of who is attached where; true when it changed. */
function noteAttachments(st: EngineState): boolean {
  const next = new Map<string, string[]>();
  for (const id of st.routing.hubIds) if (st.peers.has(id)) next.set(id, []);
  for (const ps of [...st.peers.values()].sort((a, b) => (a.peer.id < b.peer.id ? -1 : 1))) {
    const via = ps.peer.role === "hub" ? undefined : ps.peer.attachedTo;
    if (via !== undefined) next.get(via)?.push(...hostRoutes(ps.peer));
  }
  const key = (m: Map<string, string[]>): string => JSON.stringify([...m].sort());
  if (key(next) === key(st.routing.attached)) return false;
  st.routing.attached = next;
  return true;
}

/** What a tree edge's record must keep saying on every self update (the runtime sends the whole record). */
export const selfAttachment = (st: EngineState): Pick<PeerUpdate, "attachedTo"> =>
  st.routing.announced === undefined ? {} : { attachedTo: st.routing.announced };

/** tree, on an edge: another edge is no WireGuard peer; it is reached through the hubs. */
export const treeEdgePair = (st: EngineState, ps: PeerState): boolean =>
  st.network?.topology === "tree" && st.self?.role !== "hub" && ps.peer.role !== "hub";

/**
 * The peers of work that are WireGuard peers. A tree edge's other edges are
 * settled as `hub` (or `none` with no hub) and kept out of the desired set.
 */
export function wireguardPeers(st: EngineState, work: PeerState[]): PeerState[] {
  return work.filter((ps) => {
    if (!treeEdgePair(st, ps)) return true;
    Object.assign(ps.paths, {
      path: st.routing.hubId === undefined ? "none" : "hub",
      settled: true,
      reason: "tree: edges reach each other through the hubs",
      endpoint: undefined,
    });
    ps.applied.entry = undefined;
    st.unsettled.delete(ps.peer.id);
    return false;
  });
}

/** A hub's reports about third peers are trusted (it sees every edge's WireGuard traffic); a member's are not. */
export const isHub = (r: RoutingState, peerId: string): boolean => r.hubIds.has(peerId);

const hostRoutes = (p: Peer): string[] => [`${p.address}/32`, ...(p.address6 ? [`${p.address6}/128`] : [])];

/** tree: a hub's entries follow the attachments; an edge's hubs other than its own carry nothing. */
function treeAllowedIps(r: RoutingState, ps: PeerState): string[] | undefined {
  if (r.selfHub) {
    if (ps.peer.role === "hub") return [...hostRoutes(ps.peer), ...(r.attached.get(ps.peer.id) ?? [])];
    const via = ps.peer.attachedTo;
    return via !== undefined && r.attached.has(via) ? [] : hostRoutes(ps.peer);
  }
  return ps.peer.id === r.hubId ? undefined : [];
}

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
  const tree = r.tree ? treeAllowedIps(r, ps) : undefined;
  if (tree) return tree;
  if (ps.peer.id === r.hubId && network) return [network.cidr, ...(network.cidr6 ? [network.cidr6] : [])];
  if (r.hubId !== undefined && !direct && viaHub) return [];
  return hostRoutes(ps.peer);
}
