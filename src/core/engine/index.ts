/**
 * The join engine: a pure reducer (step.ts) over the types in types.ts.
 * The daemon (src/daemon) feeds it inputs and carries out its effects; unit
 * tests do the same over a simulated network.
 */
import { natInfoOf } from "../netcheck.js";
import { endpointFamily } from "../ip.js";
import { adminMode, pausedReason, type AdminMode } from "./admin.js";
import { latencyOf, shownEndpoint } from "./paths.js";
import type { EngineState, PeerState, PeerStatus, SelfStatus } from "./types.js";

export { createEngineState, selfCandidates, step } from "./step.js";
export * from "./types.js";

export interface EngineStatus {
  network: string | null;
  self: SelfStatus | null;
  /** Running, or which switch pauses it (admin.ts). */
  admin: AdminMode;
  peers: PeerStatus[];
}

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
    reason: paused ? pausedReason(st.admin) : ps.paths.reason,
    settled: paused || ps.paths.settled,
  };
}

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
        }
      : null,
    admin: adminMode(st.admin),
    peers: [...st.peers.values()].map((ps) => peerStatus(st, ps)).sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/** Whether any peer is still pending: the runtime polls backend stats faster then. */
export const anyPending = (st: EngineState): boolean => st.admin.active && st.unsettled.size > 0;
