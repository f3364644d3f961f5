/**
 * Per-peer decisions, as pure functions of the engine state and the time:
 * is the path direct, which WireGuard endpoint to configure, when to give up
 * and why, what to tell the backend.
 */
import type { DesiredPeer } from "../backend.js";
import { endpointFamily, familyOf, formatEndpoint, type Family } from "../ip.js";
import { bestPath, pathCandidates, type PathCandidate } from "../path.js";
import { probePairKey } from "../probe/mac.js";
import type { Peer } from "../protocol.js";
import { HANDSHAKE_FRESH_MS, PERSISTENT_KEEPALIVE_S } from "../timers.js";
import type { EngineState, PeerState, PeerStatus } from "./types.js";

/** WireGuard (and some backends) report handshake times in whole seconds. */
const HANDSHAKE_SLACK_MS = 1_000;

export function newPeerState(st: EngineState, peer: Peer, now: number): PeerState {
  let key: Uint8Array | undefined;
  try {
    key = probePairKey(st.cfg.identity.secretKey, st.cfg.identity.publicKey, peer.identityKey);
  } catch {
    key = undefined;
  }
  return {
    peer,
    key,
    since: now,
    probeRound: 0,
    nextProbeAt: now,
    answers: new Map(),
    probeFrom: undefined,
    firstV4AnswerAt: undefined,
    reported: [],
    endpoint: undefined,
    endpointSince: now,
    failed: new Set(),
    statsEndpoint: undefined,
    roamed: undefined,
    steer: false,
    lastHandshakeMs: undefined,
    staleHandshakeMs: undefined,
    path: "pending",
    reason: null,
    settled: false,
    retriggerRound: 0,
    nextTriggerAt: now,
    lastReport: undefined,
    reportDueAt: now + st.cfg.profile.reportAfterMs,
    announceApplied: false,
    inBackend: false,
  };
}

/** Starts a new attempt toward ps (its candidates or ours changed): old evidence no longer counts. */
export function restartAttempt(st: EngineState, ps: PeerState, now: number): void {
  Object.assign(ps, {
    since: now,
    probeRound: 0,
    nextProbeAt: now,
    answers: new Map(),
    firstV4AnswerAt: undefined,
    endpointSince: now,
    failed: new Set(),
    // The handshake we knew of before this attempt proves nothing about the new one.
    staleHandshakeMs: ps.lastHandshakeMs,
    path: "pending",
    reason: null,
    settled: false,
    retriggerRound: 0,
    nextTriggerAt: now,
    reportDueAt: now + st.cfg.profile.reportAfterMs,
  } satisfies Partial<PeerState>);
}

/** Families this host can use: those of its own addresses. */
export function selfFamilies(st: EngineState): Set<Family> {
  return new Set((st.self?.candidates ?? []).map((c) => familyOf(c.address)));
}

/** A completed handshake newer than the current attempt is traffic across the tunnel: the path works. */
export function isDirect(ps: PeerState, now: number): boolean {
  const hs = ps.lastHandshakeMs;
  if (hs === undefined || hs === ps.staleHandshakeMs || now - hs >= HANDSHAKE_FRESH_MS) return false;
  // Whole seconds mean a backend that rounds (wg show dump): allow the
  // rounding. A precise time (UAPI) must be newer than the attempt, or a
  // handshake made just before a migration would count for the new path.
  return hs >= ps.since - (hs % 1_000 === 0 ? HANDSHAKE_SLACK_MS : 0);
}

/** The peer's NAT maps per destination (symmetric): an IPv4 mapping someone saw is valid for that someone only. */
export const peerSymmetric = (ps: PeerState): boolean => ps.peer.nat.mapping === "endpoint-dependent";

export function candidatesOf(
  _st: EngineState,
  ps: PeerState,
  families: ReadonlySet<Family>,
): PathCandidate[] {
  // A reported WireGuard endpoint of a symmetric-NAT peer is the mapping
  // toward whoever reported it; sending there from here goes nowhere (and a
  // stale record may still carry one). Never use it.
  const sym = peerSymmetric(ps);
  const peer = sym
    ? { ...ps.peer, candidates: ps.peer.candidates.filter((c) => c.kind !== "reported") }
    : ps.peer;
  return pathCandidates(
    peer,
    sym ? [] : ps.reported,
    (p) => ps.answers.get(formatEndpoint(p))?.rttMs ?? null,
    families,
  );
}

/**
 * Until this time an unanswered IPv6 candidate is still preferred over IPv4:
 * the seed's 8 s, or (fast) a short grace after IPv4 answered.
 */
export function v6Deadline(st: EngineState, ps: PeerState): number {
  const p = st.cfg.profile;
  const fallback = ps.since + p.v4FallbackMs;
  return ps.firstV4AnswerAt === undefined ? fallback : Math.min(fallback, ps.firstV4AnswerAt + p.v6GraceMs);
}

/** Families to probe now: seed probes IPv6 alone first and IPv4 only for peers silent on IPv6 at 8 s. */
export function probeFamilies(st: EngineState, ps: PeerState, now: number): Set<Family> {
  const mine = selfFamilies(st);
  if (st.cfg.profile.probeAllFamilies || !mine.has("ipv6")) return mine;
  const v6 = candidatesOf(st, ps, new Set<Family>(["ipv6"]));
  if (v6.length === 0) return mine;
  if (now < ps.since + st.cfg.profile.v4FallbackMs || v6.some((c) => c.rttMs !== null))
    return new Set(["ipv6"]);
  return mine;
}

/**
 * The WireGuard endpoint for a peer that is not direct. Never called for a
 * direct peer: then the roamed endpoint WireGuard reports is the truth.
 */
export function chooseEndpoint(st: EngineState, ps: PeerState, now: number): string | undefined {
  // The last working session's endpoint is the peer's real mapping unless it
  // moved; a candidate guess must not replace it before it has failed once.
  if (ps.roamed !== undefined && !ps.failed.has(ps.roamed)) return ps.roamed;
  // Behind a symmetric NAT, the peer's IPv4 WireGuard mapping toward this
  // host exists only once it sends to us, and then WireGuard roams to it by
  // itself. Every IPv4 guess (its reflexive address with the listen port, a
  // port someone else saw) is wrong, and an apply of a guess that lands just
  // after WireGuard roamed would undo the one working endpoint. So configure
  // none on IPv4: the peer initiates (it has our endpoint), we answer.
  const fams = selfFamilies(st);
  if (peerSymmetric(ps)) fams.delete("ipv4");
  const found = candidatesOf(st, ps, fams);
  // A private address of another LAN leads nowhere; use one only if it answered
  // (same LAN) or if nothing public exists at all.
  const reachable = found.filter((c) => !c.private || c.rttMs !== null);
  const all = reachable.some((c) => !c.private) ? reachable : found;
  if (all.length === 0) return undefined;
  let usable = all.filter((c) => !ps.failed.has(c.endpoint));
  if (usable.length === 0) {
    // Every candidate timed out once: start over rather than stop trying.
    ps.failed.clear();
    usable = all;
  }
  const best = bestPath(usable);
  if (best?.family !== "ipv4") {
    // A silent IPv6 candidate outranks IPv4 ones that have no round trip of
    // their own (a reported WireGuard mapping, a port-shifting guess) even
    // when the peer's IPv4 address answers probes: that answer is enough to
    // move to IPv4 once IPv6 had its grace.
    if (best?.rttMs === null && ps.firstV4AnswerAt !== undefined && now >= v6Deadline(st, ps)) {
      const v4 = bestPath(usable.filter((c) => c.family === "ipv4"));
      if (v4 !== undefined) return v4.endpoint;
    }
    return best?.endpoint;
  }
  const v6 = bestPath(usable.filter((c) => c.family === "ipv6"));
  if (v6 && v6.rttMs === null && now < v6Deadline(st, ps)) return v6.endpoint;
  return best.endpoint;
}

/** Why a settled peer is not direct, as `scope status` shows it. */
export function notDirectReason(st: EngineState, ps: PeerState): string {
  const selfSym = st.self?.nat.mapping === "endpoint-dependent";
  const peerSym = ps.peer.nat.mapping === "endpoint-dependent";
  if (selfSym && peerSym) return "both peers behind symmetric NAT";
  if (peerSym) return "peer behind symmetric NAT";
  if (selfSym) return "this host behind symmetric NAT";
  if (candidatesOf(st, ps, selfFamilies(st)).length === 0) return "no candidate in a common address family";
  if (ps.answers.size === 0) return "no answer on any candidate";
  return "probes answered but no WireGuard handshake";
}

/** Symmetric NAT on both sides and no IPv6 on both: no direct path can exist (DESIGN §4). */
export function hopeless(st: EngineState, ps: PeerState): boolean {
  const bothSym =
    st.self?.nat.mapping === "endpoint-dependent" && ps.peer.nat.mapping === "endpoint-dependent";
  return bothSym && candidatesOf(st, ps, new Set<Family>(["ipv6"])).length === 0;
}

/** The hub this edge routes through when no direct path exists: a direct hub, lowest latency first. */
export function currentHub(st: EngineState, now: number): PeerState | undefined {
  if (st.self?.role === "hub") return undefined;
  const hubs = [...st.peers.values()].filter((p) => p.peer.role === "hub" && isDirect(p, now));
  return hubs.sort(
    (a, b) => (latencyOf(a) ?? Infinity) - (latencyOf(b) ?? Infinity) || (a.peer.id < b.peer.id ? -1 : 1),
  )[0];
}

export function latencyOf(ps: PeerState): number | null {
  const fam = ps.endpoint ? endpointFamily(ps.endpoint) : undefined;
  let best: number | null = null;
  for (const [to, a] of ps.answers) {
    if (fam && endpointFamily(to) !== fam) continue;
    if (best === null || a.rttMs < best) best = a.rttMs;
  }
  return best;
}

const hostRoutes = (p: Peer): string[] => [`${p.address}/32`, ...(p.address6 ? [`${p.address6}/128`] : [])];

/**
 * The desired WireGuard peer set. Endpoints: WireGuard roams to wherever a
 * peer's authenticated packets come from, and that can happen between our
 * last stats read and this apply. An endpoint in the desired set would undo
 * it (backends treat an absent endpoint as "no opinion"), so this names an
 * endpoint only where the engine is steering: a new choice not yet applied.
 * The comparison key (desiredKey) always carries ps.endpoint, so a new
 * choice still makes a new apply.
 *
 * Routing by longest prefix (DESIGN §5): the
 * hub carries the network CIDR, a direct peer its /32 (/128); a peer that is
 * not direct while a hub exists carries nothing, so its traffic goes via the
 * hub, and WireGuard keeps trying its own endpoint through keepalives.
 */
export function desiredPeers(st: EngineState, now: number): DesiredPeer[] {
  const hub = currentHub(st, now);
  const out: DesiredPeer[] = [];
  for (const ps of st.peers.values()) {
    let allowedIps: string[];
    if (ps === hub && st.network)
      allowedIps = [st.network.cidr, ...(st.network.cidr6 ? [st.network.cidr6] : [])];
    else if (hub && !isDirect(ps, now)) allowedIps = [];
    else allowedIps = hostRoutes(ps.peer);
    out.push({
      publicKey: ps.peer.wgPublicKey,
      ...(ps.endpoint && ps.steer ? { endpoint: ps.endpoint } : {}),
      allowedIps,
      persistentKeepalive: PERSISTENT_KEEPALIVE_S,
    });
  }
  return out.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));
}

/** What decides whether a new apply is needed: the desired set with every chosen endpoint. */
export function desiredKey(st: EngineState, desired: DesiredPeer[]): string {
  const chosen = new Map([...st.peers.values()].map((ps) => [ps.peer.wgPublicKey, ps.endpoint]));
  return JSON.stringify(desired.map((d) => ({ ...d, endpoint: chosen.get(d.publicKey) })));
}

export function peerStatus(ps: PeerState): PeerStatus {
  const endpoint = ps.path === "direct" ? (ps.statsEndpoint ?? ps.endpoint) : ps.endpoint;
  return {
    id: ps.peer.id,
    name: ps.peer.name,
    address: ps.peer.address,
    path: ps.path,
    endpoint: endpoint ?? null,
    family: endpoint ? endpointFamily(endpoint) : null,
    latencyMs: latencyOf(ps),
    lastHandshakeMs: ps.lastHandshakeMs ?? null,
    reason: ps.reason,
    settled: ps.settled,
  };
}
