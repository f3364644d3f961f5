/**
 * The join engine: a pure reducer (step.ts) over the types in types.ts.
 * The daemon (src/daemon) feeds it inputs and carries out its effects; unit
 * tests do the same over a simulated network.
 */
import { natInfoOf } from "../netcheck.js";
import { endpointFamily } from "../ip.js";
import { adminMode, pausedReason, type AdminMode } from "./admin.js";
import { kexStatus } from "./kex.js";
import { hopeless, latencyOf, shownEndpoint } from "./paths.js";
import { treeEdgePair } from "./routing.js";
import type { EngineState, PeerState, PeerStatus, SelfStatus } from "./types.js";

export { createEngineState, selfCandidates, step } from "./step.js";
export { selfAttachment } from "./routing.js";
export { memberOf } from "./membership.js";
export * from "./types.js";

export interface EngineStatus {
  network: string | null;
  self: SelfStatus | null;
  /** Running, or which switch pauses it (admin.ts). */
  admin: AdminMode;
  peers: PeerStatus[];
}

/** Why a peer is not direct when its probes are refused for their time. */
const skewReason = (ps: PeerState): string | undefined =>
  ps.probe.skewMs === undefined || ps.paths.path === "direct"
    ? undefined
    : `clock off by ${Math.round(ps.probe.skewMs / 1000)} s (probes rejected)`;

function peerStatus(st: EngineState, ps: PeerState): PeerStatus {
  const paused = !st.admin.active;
  const endpoint = shownEndpoint(ps);
  const latency = latencyOf(ps);
  return {
    id: ps.peer.id,
    name: ps.peer.name,
    publicKey: ps.peer.wgPublicKey,
    address: ps.peer.address,
    path: paused ? "none" : ps.paths.path,
    endpoint: endpoint ?? null,
    family: endpoint ? endpointFamily(endpoint) : null,
    // Microseconds are as far as a probe round trip means anything.
    latencyMs: paused || latency === null ? null : Math.round(latency * 1_000) / 1_000,
    lastHandshakeMs: ps.paths.wg.lastHandshakeMs ?? null,
    reason: paused ? pausedReason(st.admin) : (skewReason(ps) ?? ps.paths.reason),
    settled: paused || ps.paths.settled,
    ...(ps.probe.skewMs === undefined ? {} : { clockOffS: Math.round(ps.probe.skewMs / 1000) }),
    psk: kexStatus(ps.kex),
    hub: paused || ps.paths.path !== "hub" ? null : hubName(st),
  };
}

const nameOf = (st: EngineState, id: string | undefined): string | null =>
  id === undefined ? null : (st.peers.get(id)?.peer.name ?? null);
const hubName = (st: EngineState): string | null => nameOf(st, st.routing.hubId);

/** On a hub, the edges it relays for: in a tree those attached to it, in a mesh every edge it reaches directly. */
const relaysFor = (st: EngineState): string[] =>
  [...st.peers.values()]
    .filter((ps) =>
      ps.peer.role === "hub"
        ? false
        : st.routing.tree
          ? ps.peer.attachedTo === st.self?.id
          : ps.paths.path === "direct",
    )
    .map((ps) => ps.peer.name)
    .sort();

/** On an edge with hubs in its network: its hub and standby. */
const hubsOf = (st: EngineState): Pick<SelfStatus, "hub" | "standby"> =>
  st.routing.hubIds.size === 0 ? {} : { hub: hubName(st), standby: nameOf(st, st.routing.standbyId) };

/** The engine's half of `scope status` (the daemon adds nothing it does not know). */
export function engineStatus(st: EngineState): EngineStatus {
  const self = st.self;
  return {
    network: st.network?.name ?? null,
    self: self
      ? {
          id: self.id,
          name: self.name,
          address: self.address,
          listenPort: self.listenPort,
          nat: self.nat ?? natInfoOf(st.netcheck),
          role: self.role,
          ...(self.role === "hub" ? { relaysFor: relaysFor(st) } : hubsOf(st)),
        }
      : null,
    admin: adminMode(st.admin),
    peers: [...st.peers.values()].map((ps) => peerStatus(st, ps)).sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/** Whether any peer is still pending: the runtime polls backend stats faster then. */
export const anyPending = (st: EngineState): boolean => st.admin.active && st.unsettled.size > 0;

/**
 * When the runtime reads backend stats next, from now. A scan of the peers,
 * so called once per poll, not per input (anyPending is the cheap test). A
 * pair that can never go direct (symmetric NAT on both sides, no IPv6) does
 * not keep the fast poll going forever.
 */
export function statsPollMs(st: EngineState): number {
  const p = st.cfg.profile;
  if (anyPending(st)) return p.statsPendingMs;
  if (!st.admin.active) return p.statsSettledMs;
  for (const ps of st.peers.values())
    if (ps.paths.path !== "direct" && !hopeless(st, ps) && !treeEdgePair(st, ps)) return p.statsIndirectMs;
  return p.statsSettledMs;
}
