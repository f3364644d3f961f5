/**
 * The join engine's vocabulary: what goes in (EngineInput), what comes out
 * (EngineEffect), and the state in between. step.ts is the reducer.
 */
import type { DesiredPeer, PeerStats } from "../backend.js";
import type { Family } from "../ip.js";
import type { NetcheckReport } from "../netcheck.js";
import type {
  Candidate,
  Endpoint,
  Event,
  JoinResponse,
  NatInfo,
  Network,
  Peer,
  PeerUpdate,
  PostMessage,
} from "../protocol.js";
import type { TimerProfile } from "../timers.js";

/** The engine needs one timer: "tick" wakes it at its next deadline. */
export type TimerName = "tick";

export type EngineInput =
  /** The registry accepted the join (or re-join: same identity, same id). existing: backend stats at start, to adopt live tunnels. */
  | { type: "joined"; response: JoinResponse; existing: PeerStats[] }
  /** One SSE event, in order. */
  | { type: "event"; event: Event }
  /** A full peer list after an event-stream gap (registry restart): adds, updates and drops to match. */
  | { type: "resync"; peers: Peer[] }
  | { type: "probeReceived"; from: Endpoint; bytes: Uint8Array }
  | { type: "stats"; stats: PeerStats[] }
  | { type: "timer"; name: TimerName }
  /** A fresh netcheck; if it changes this host's mapping, the engine migrates. */
  | { type: "netcheck"; report: NetcheckReport }
  /** The host's usable addresses changed, with a netcheck made after the change when there is one. */
  | { type: "addressesChanged"; addresses: string[]; netcheck?: NetcheckReport };

export type LogLevel = "debug" | "info" | "warn" | "error";

export type EngineEffect =
  | { type: "sendProbe"; to: Endpoint; bytes: Uint8Array }
  | { type: "postMessage"; message: PostMessage }
  /** The whole desired peer set; the runtime adds the interface and calls Backend.apply. */
  | { type: "applyPeers"; peers: DesiredPeer[] }
  /** After the preceding applyPeers has completed. */
  | { type: "triggerHandshake"; publicKey: string }
  /** Replaces a pending timer of the same name. */
  | { type: "setTimer"; name: TimerName; delayMs: number }
  | { type: "clearTimer"; name: TimerName }
  | { type: "updateSelf"; update: PeerUpdate }
  /** The registry removed this peer: the runtime should stop. */
  | { type: "selfRemoved" }
  | { type: "log"; level: LogLevel; msg: string; fields?: Record<string, unknown> };

export type PeerPath = "direct" | "hub" | "pending" | "none";

export interface EngineConfig {
  profile: TimerProfile;
  /** Ed25519 identity: the public key and the 32-byte seed, for probe MAC keys. */
  identity: { publicKey: string; secretKey: Uint8Array };
  /** 4 random bytes (8 hex digits) chosen per start, so probe nonces never repeat across restarts. */
  nonceSalt: string;
  probePort: number;
  /** Accepted probe clock skew. */
  probeWindowMs?: number;
}

export interface ProbeAnswer {
  rttMs: number;
  at: number;
}

export interface PeerState {
  peer: Peer;
  /** Pair key for probe MACs; undefined if the identity key is unusable. */
  key: Uint8Array | undefined;
  /** Start of the current attempt (join, peerJoin, peerUpdate, migration); a handshake must be newer. */
  since: number;
  probeRound: number;
  nextProbeAt: number;
  /** Answers by probe target "ip:port". */
  answers: Map<string, ProbeAnswer>;
  /** Where this peer's probes came from (its probe-port mapping as seen here). */
  probeFrom: Endpoint | undefined;
  firstV4AnswerAt: number | undefined;
  /** WireGuard endpoints reported by others for this peer. */
  reported: Candidate[];
  /** The endpoint configured in WireGuard now, and since when. */
  endpoint: string | undefined;
  endpointSince: number;
  /** Endpoints that got no handshake within the timeout in this attempt. */
  failed: Set<string>;
  statsEndpoint: string | undefined;
  /** ps.endpoint is a new choice the next apply must carry (see desiredPeers). */
  steer: boolean;
  /** The endpoint of the last direct session: tried first when a new attempt starts, before any candidate. */
  roamed: string | undefined;
  lastHandshakeMs: number | undefined;
  /** The last handshake seen when the current attempt started: only a different one counts. */
  staleHandshakeMs: number | undefined;
  path: PeerPath;
  reason: string | null;
  settled: boolean;
  retriggerRound: number;
  nextTriggerAt: number;
  /** Dedupe key of the last report sent about this peer. */
  lastReport: string | undefined;
  reportDueAt: number;
  /** Tell this peer we applied it (it joined): it re-triggers its handshake toward us. */
  announceApplied: boolean;
  /** Some apply has configured this peer in the backend already (or it was adopted live). */
  inBackend: boolean;
}

export interface EngineState {
  cfg: EngineConfig;
  self: Peer | undefined;
  network: Network | undefined;
  joinedAt: number;
  peerConnSent: boolean;
  addresses: string[];
  netcheck: NetcheckReport | undefined;
  /** This host's WireGuard endpoints as peers saw them (reported to us). */
  reportedSelf: Candidate[];
  peers: Map<string, PeerState>;
  pingsOut: Map<string, { peerId: string; to: string; sentAt: number }>;
  seenNonces: Map<string, number>;
  nonceCounter: number;
  lastApplied: string | undefined;
  timerAt: number | undefined;
}

export interface StepResult {
  state: EngineState;
  effects: EngineEffect[];
}

/** One row of `scope status` (the JSON shape the lab depends on). */
export interface PeerStatus {
  id: string;
  name: string;
  address: string;
  path: PeerPath;
  endpoint: string | null;
  family: Family | null;
  latencyMs: number | null;
  lastHandshakeMs: number | null;
  reason: string | null;
  settled: boolean;
}

export interface SelfStatus {
  id: string;
  name: string;
  address: string;
  listenPort: number;
  nat: NatInfo;
}
