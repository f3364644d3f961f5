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
  PeerRole,
  PeerUpdate,
  PostMessage,
} from "../protocol.js";
import type { EndpointEvidence } from "../path.js";
import type { TimerProfile } from "../timers.js";
import type { AdminState } from "./admin.js";
import type { Deadlines } from "./deadlines.js";
import type { KexConfig, KexShared, KexState } from "./kex.js";
import type { RoutingState } from "./routing.js";

/** The engine needs one timer: "tick" wakes it at its next deadline. */
export type TimerName = "tick";

export type EngineInput =
  /** The registry accepted the join (or re-join: same identity, same id). existing: backend stats at start, to adopt live tunnels. */
  | { type: "joined"; response: JoinResponse; existing: PeerStats[] }
  /** One SSE event, in order. */
  | { type: "event"; event: Event }
  /**
   * A full peer list after an event-stream gap (registry restart): adds, updates and drops to match,
   * except the peers in `newer`: events told of them after the list was asked for (membership.ts onResync).
   */
  | { type: "resync"; peers: Peer[]; newer?: readonly string[] }
  | { type: "probeReceived"; from: Endpoint; bytes: Uint8Array }
  | { type: "stats"; stats: PeerStats[] }
  | { type: "timer"; name: TimerName }
  /** A fresh netcheck; if it changes this host's mapping, the engine migrates. */
  | { type: "netcheck"; report: NetcheckReport }
  /** The host's usable addresses changed, with a netcheck made after the change when there is one. */
  | { type: "addressesChanged"; addresses: string[]; netcheck?: NetcheckReport }
  /** The user switched the tunnel off (false) or on again (true) outside Scope (NetworkManager). */
  | { type: "backendActive"; active: boolean }
  /** `scope psk rotate [PEER]`: rotate the PSK with one peer (id or name), or every peer, now. */
  | { type: "kexRotate"; peer?: string }
  /** An admin paused (true) or resumed (false) the engine (cc.ltgc.Scope1); the backend's switch is not touched. */
  | { type: "adminPause"; paused: boolean };

export type LogLevel = "debug" | "info" | "warn" | "error";

export type EngineEffect =
  | { type: "sendProbe"; to: Endpoint; bytes: Uint8Array }
  | { type: "postMessage"; message: PostMessage }
  /** The whole desired peer set; the runtime adds the interface and calls Backend.apply. */
  | { type: "applyPeers"; peers: DesiredPeer[] }
  /** After the preceding applyPeers has completed. */
  /** seenHandshakeMs: the last handshake the engine knows of (0: none); a newer live one cancels the trigger. */
  | { type: "triggerHandshake"; publicKey: string; seenHandshakeMs: number }
  /** Replaces a pending timer of the same name. */
  | { type: "setTimer"; name: TimerName; delayMs: number }
  | { type: "clearTimer"; name: TimerName }
  | { type: "updateSelf"; update: PeerUpdate }
  /** The registry removed this peer: the runtime should stop. */
  | { type: "selfRemoved" }
  | { type: "log"; level: LogLevel; msg: string; fields?: Record<string, unknown> };

export type PeerPath = "direct" | "hub" | "pending" | "none";

/** An identity as the engine holds it: the seed stays in the closures. */
export interface EngineIdentity {
  readonly publicKey: string;
  pairKey(theirPublic: string): Uint8Array;
  /** Ed25519 signature, base64. */
  sign(message: string): string;
}

export interface EngineConfig {
  profile: TimerProfile;
  /**
   * Ed25519 identity: the public key, the probe MAC key with a peer and a
   * signer for kex messages (src/core/probe/mac.ts identityKeyer). The seed
   * itself stays out of the state, so no dump, log or status of the state
   * can ever carry it.
   */
  identity: EngineIdentity;
  /** 4 random bytes (8 hex digits) chosen per start, so probe nonces never repeat across restarts. */
  nonceSalt: string;
  probePort: number;
  /** WireGuard endpoints the admin configured for this host (a hub's fixed public one). */
  configured?: Endpoint[];
  /** Accepted probe clock skew. */
  probeWindowMs?: number;
  /** PSK rotation (kex.ts); absent: `[psk] mode = off`, no PSKs. */
  kex?: KexConfig;
}

export interface ProbeAnswer {
  /** Round trip of recent answers (the lowest of the last few, fractional ms): a moving figure, not the first one. */
  rttMs: number;
  /** The last few round trips, newest last. */
  samples: number[];
  at: number;
}

/**
 * The paths slice of one peer (paths.ts): the current attempt, the endpoint
 * evidence and the chosen endpoint, and the verdict (path, reason, settled).
 */
export interface PathState {
  /** Start of the current attempt (join, peerJoin, peerUpdate, migration); a handshake must be newer. */
  since: number;
  /** WireGuard endpoints learned outside the peer's record: the latest roamed one, reported ones. */
  evidence: EndpointEvidence[];
  /** The endpoint chosen for WireGuard now (the decision), and since when. */
  endpoint: string | undefined;
  endpointSince: number;
  /** Endpoints that got no handshake within the timeout in this attempt. */
  failed: Set<string>;
  /** What WireGuard reported last (stats): the endpoint in use and the last handshake. */
  wg: { endpoint: string | undefined; lastHandshakeMs: number | undefined };
  /** The last handshake seen when the current attempt started: only a different one counts. */
  staleHandshakeMs: number | undefined;
  path: PeerPath;
  reason: string | null;
  settled: boolean;
  retriggerRound: number;
  nextTriggerAt: number;
  /**
   * With a hub carrying the pair: when both sides move to the direct path
   * (paths.ts upgradeAt), whether we told the peer, and when the pair went
   * direct (a silent direct path is judged from then on).
   */
  upgrade: { at: number | undefined; announced: boolean; directAt: number | undefined };
}

/** The probing slice of one peer (probing.ts). */
export interface ProbeState {
  /** Probe rounds in this attempt while pending, and since settling. */
  round: number;
  settledRound: number;
  nextAt: number;
  /** Answers by probe target "ip:port". */
  answers: Map<string, ProbeAnswer>;
  firstV4AnswerAt: number | undefined;
  /**
   * Where this peer's verified pings came from: its probe port's mapping as
   * seen here (not a WireGuard endpoint). Reported back to it, and probed
   * too: behind a symmetric NAT it is the one address that answers.
   */
  source: Endpoint | undefined;
  /** The peer's clock minus ours, from its last probe rejected as outside the window; undefined once one fits. */
  skewMs: number | undefined;
  /** Verified probes rejected for their time. */
  skewRejected: number;
  /**
   * The peer's clock minus ours, from the pong with the lowest round trip
   * lately (probing.ts noteClock): a busy moment on either side only makes
   * a round trip longer, so the shortest one bounds the error best (as NTP
   * does). Used to meet the peer's announced switch time (paths.ts noteUpgrade).
   */
  clock: { offsetMs: number; rttMs: number; at: number } | undefined;
}

/** What we tell a peer about itself (reports.ts). */
export interface ReportState {
  /** Dedupe key of the last report sent about this peer. */
  last: string | undefined;
  dueAt: number;
  /** Tell this peer we applied it (it joined): it re-triggers its handshake toward us. */
  announceApplied: boolean;
}

/** What the backend was last told about one peer (desired.ts). */
export interface AppliedState {
  /** Some apply has configured this peer in the backend already (or it was adopted live). */
  inBackend: boolean;
  /** The entry of the last apply, endpoint aside (compared structurally). */
  entry: DesiredPeer | undefined;
  /** The endpoint the backend has as far as we know: the chosen one at the last apply, or what stats showed. */
  endpoint: string | undefined;
  /**
   * Endpoints our applies named lately, newest first, and when: WireGuard at
   * one of them within APPLY_LANDING_MS is our doing (a late apply), not roaming.
   */
  named: { endpoint: string; at: number }[];
}

export interface PeerState {
  peer: Peer;
  /** Pair key for probe MACs; undefined if the identity key is unusable. */
  key: Uint8Array | undefined;
  paths: PathState;
  probe: ProbeState;
  report: ReportState;
  kex: KexState;
  applied: AppliedState;
  /** Earliest future deadline of this peer, as last scheduled (deadlines.ts). */
  dueAt: number | undefined;
}

/** Global probe bookkeeping: nonces and outstanding pings. */
export interface ProbeBook {
  pingsOut: Map<string, { peerId: string; to: string; sentAt: number }>;
  seenNonces: Map<string, number>;
  nonceCounter: number;
  /** When pingsOut and seenNonces were last pruned (at most every PROBE_PRUNE_EVERY_MS). */
  prunedAt: number;
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
  /** WireGuard public key → peer, for stats. */
  byKey: Map<string, PeerState>;
  probes: ProbeBook;
  routing: RoutingState;
  admin: AdminState;
  /**
   * Peers whose facts changed since the last reconcile; all: every peer (a
   * global fact changed); membership: peers came or went, so the next
   * reconcile applies even if no entry changed.
   */
  dirty: { peers: Set<string>; all: boolean; membership: boolean };
  /** Ids of peers not settled, so anyPending and peerConn need no scan. */
  unsettled: Set<string>;
  deadlines: Deadlines;
  timerAt: number | undefined;
  /** The kex slice's ephemeral key pairs of the current round (kex.ts). Secret. */
  kexShared: KexShared;
}

export interface StepResult {
  state: EngineState;
  effects: EngineEffect[];
}

/** One row of `scope status` (the JSON shape the lab depends on). */
export interface PeerStatus {
  id: string;
  name: string;
  /** WireGuard public key (cc.ltgc.Scope1 shows it; never a secret). */
  publicKey: string;
  address: string;
  path: PeerPath;
  endpoint: string | null;
  family: Family | null;
  latencyMs: number | null;
  lastHandshakeMs: number | null;
  reason: string | null;
  settled: boolean;
  /** Present while this peer's probes are rejected because its clock is off by this many seconds. */
  clockOffS?: number;
  /** The PSK's epoch, since when it is configured (epoch ms) and how many rotations so far; null: no PSK. */
  psk: { epoch: number; since: number; rotations: number } | null;
  /** The hub carrying this peer's traffic (its name) while the path is `hub`; null otherwise. */
  hub: string | null;
}

export interface SelfStatus {
  id: string;
  name: string;
  address: string;
  listenPort: number;
  nat: NatInfo;
  /** The registry's word for this host (hub tokens, `scope peer set --role`). */
  role: PeerRole;
  /** On a hub: the edges it relays for (tree: those attached to it; mesh: those it has a direct path to); absent on an edge. */
  relaysFor?: string[];
  /** On an edge in a network with hubs: the hub it routes through now and the one it would move to (names, null: none). */
  hub?: string | null;
  standby?: string | null;
}
