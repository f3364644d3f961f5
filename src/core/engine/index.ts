/**
 * The join engine: a pure reducer (step.ts) over the types in types.ts.
 * The daemon (src/daemon) feeds it inputs and carries out its effects; unit
 * tests do the same over a simulated network.
 */
import { natInfoOf } from "../netcheck.js";
import { peerStatus } from "./peer.js";
import type { EngineState, PeerStatus, SelfStatus } from "./types.js";

export { createEngineState, selfCandidates, step } from "./step.js";
export * from "./types.js";

export interface EngineStatus {
  network: string | null;
  self: SelfStatus | null;
  peers: PeerStatus[];
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
    peers: [...st.peers.values()].map(peerStatus).sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/** Whether any peer is still pending: the runtime polls backend stats faster then. */
export const anyPending = (st: EngineState): boolean => [...st.peers.values()].some((p) => !p.settled);
