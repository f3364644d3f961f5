/**
 * The paths slice: per peer, the current attempt, what is known about the
 * peer's WireGuard endpoint (evidence), the chosen endpoint and the verdict
 * (direct / hub / pending / none). Pure functions of the state and the time.
 *
 * A path is `direct` only when proven: a handshake newer than the attempt,
 * on the endpoint WireGuard uses now, which must be the chosen one. An
 * endpoint WireGuard roamed to outranks every guess (path.ts chooseEndpoint),
 * so a late apply of a guess cannot undo it for long: the next stats read
 * shows WireGuard at our own old guess, and the roamed endpoint is applied
 * again.
 */
import type { PeerStats } from "../backend.js";
import { endpointFamily, familyOf, formatEndpoint, parseEndpoint, type Family } from "../ip.js";
import { chooseEndpoint, evidenceCandidate, pathCandidates, type PathCandidate } from "../path.js";
import type { Candidate, Endpoint, Peer } from "../protocol.js";
import {
  APPLY_LANDING_MS,
  DIRECT_CHECK_MS,
  DIRECT_SILENT_MS,
  HANDSHAKE_FRESH_MS,
  HANDSHAKE_SLACK_MS,
  SETTLED_TRY_FACTOR,
  UPGRADE_AFTER_HANDSHAKE_MS,
} from "../timers.js";
import { log } from "./log.js";
import type { EngineEffect, EngineState, PathState, PeerState } from "./types.js";

/** Reported endpoints kept per peer. */
const MAX_REPORTED = 4;

export const newPathState = (now: number): PathState => ({
  since: now,
  evidence: [],
  endpoint: undefined,
  endpointSince: now,
  failed: new Set(),
  wg: { endpoint: undefined, lastHandshakeMs: undefined },
  staleHandshakeMs: undefined,
  path: "pending",
  reason: null,
  settled: false,
  retriggerRound: 0,
  nextTriggerAt: now,
  upgrade: { at: undefined, announced: false, directAt: undefined },
});

/** Starts a new attempt toward ps (its candidates or ours changed): old evidence of success no longer counts. */
export function restartPaths(ps: PeerState, now: number): void {
  Object.assign(ps.paths, {
    since: now,
    endpointSince: now,
    failed: new Set(),
    // The handshake we knew of before this attempt proves nothing about the new one.
    staleHandshakeMs: ps.paths.wg.lastHandshakeMs,
    path: "pending",
    reason: null,
    settled: false,
    retriggerRound: 0,
    nextTriggerAt: now,
    upgrade: { at: undefined, announced: false, directAt: undefined },
  } satisfies Partial<PathState>);
}

/** The peer moved (new candidates): its endpoints are dead, except a roamed one at an address it still has. */
export function forgetEndpoints(ps: PeerState, peer: Peer): void {
  const s = ps.paths;
  s.endpoint = undefined;
  s.evidence = s.evidence.filter(
    (e) => e.source === "roamed" && peer.candidates.some((c) => sameAddress(c, e.endpoint)),
  );
}

const sameAddress = (c: Candidate, endpoint: string): boolean =>
  parseEndpoint(endpoint)?.address === c.address;

export const roamedOf = (ps: PeerState): string | undefined =>
  ps.paths.evidence.find((e) => e.source === "roamed")?.endpoint;

/** WireGuard proved it reaches the peer at endpoint: the latest roamed evidence. */
export function learnRoamed(ps: PeerState, endpoint: string, now: number): void {
  const s = ps.paths;
  const old = s.evidence.find((e) => e.source === "roamed");
  if (old?.endpoint === endpoint) {
    old.at = now;
    return;
  }
  s.evidence = [{ endpoint, source: "roamed", at: now }, ...s.evidence.filter((e) => e.source !== "roamed")];
}

/** Someone saw the peer's WireGuard traffic come from endpoint; false if known already. */
export function learnReported(ps: PeerState, endpoint: string, now: number): boolean {
  const s = ps.paths;
  if (s.evidence.some((e) => e.source === "reported" && e.endpoint === endpoint)) return false;
  const reported = [{ endpoint, source: "reported" as const, at: now }, ...reportedOf(ps)];
  s.evidence = [...s.evidence.filter((e) => e.source === "roamed"), ...reported.slice(0, MAX_REPORTED)];
  return true;
}

const reportedOf = (ps: PeerState) => ps.paths.evidence.filter((e) => e.source === "reported");

/**
 * A stats row for this peer; true when something changed. An endpoint that
 * no apply of ours named is WireGuard's own doing, after an authenticated
 * packet: roamed evidence.
 */
export function noteStats(ps: PeerState, s: PeerStats, now: number): boolean {
  const wg = ps.paths.wg;
  if (wg.endpoint === s.endpoint && wg.lastHandshakeMs === s.lastHandshakeMs) return false;
  ps.paths.wg = { endpoint: s.endpoint, lastHandshakeMs: s.lastHandshakeMs };
  if (s.endpoint === undefined) return true;
  // WireGuard moves an endpoint only on an authenticated packet: with no
  // handshake at all, an endpoint is what some apply of ours left there.
  const ours = ps.applied.named.some((n) => n.endpoint === s.endpoint && now - n.at < APPLY_LANDING_MS);
  if (!ours && s.lastHandshakeMs !== undefined) learnRoamed(ps, s.endpoint, now);
  // What the backend has now. If that is an endpoint we named before and no
  // longer want (a late apply undid a roam), the choice differs from it and
  // the next apply names the choice again.
  ps.applied.endpoint = s.endpoint;
  return true;
}

/** Families this host can use: those of its own addresses. */
export function selfFamilies(st: EngineState): Set<Family> {
  return new Set((st.self?.candidates ?? []).map((c) => familyOf(c.address)));
}

/** A completed handshake newer than the current attempt: traffic crossed the tunnel. */
export function handshakeProves(ps: PeerState, now: number): boolean {
  const s = ps.paths;
  const hs = s.wg.lastHandshakeMs;
  if (hs === undefined || hs === s.staleHandshakeMs || now - hs >= HANDSHAKE_FRESH_MS) return false;
  // Whole seconds mean a backend that rounds (wg show dump): allow the
  // rounding. A precise time (UAPI) must be newer than the attempt, or a
  // handshake made just before a migration would count for the new path.
  return hs >= s.since - (hs % 1_000 === 0 ? HANDSHAKE_SLACK_MS : 0);
}

/** Direct: a fresh handshake, and WireGuard uses the chosen endpoint (not a guess that replaced it). */
export function isDirect(ps: PeerState, now: number): boolean {
  if (!handshakeProves(ps, now)) return false;
  const { endpoint } = ps.paths;
  const inUse = ps.paths.wg.endpoint;
  return endpoint === undefined || inUse === undefined || inUse === endpoint;
}

/** The peer's NAT maps per destination (symmetric): an IPv4 mapping someone saw is valid for that someone only. */
export const peerSymmetric = (ps: PeerState): boolean => ps.peer.nat.mapping === "endpoint-dependent";

/** Every WireGuard endpoint candidate of the peer in families, evidence included. */
export function candidatesOf(st: EngineState, ps: PeerState, families: ReadonlySet<Family>): PathCandidate[] {
  // A reported WireGuard endpoint of a symmetric-NAT peer is the mapping
  // toward whoever reported it; sending there from here goes nowhere (and a
  // stale record may still carry one). Never use it.
  const sym = peerSymmetric(ps);
  const peer = sym
    ? { ...ps.peer, candidates: ps.peer.candidates.filter((c) => c.kind !== "reported") }
    : ps.peer;
  const reported: Candidate[] = sym
    ? []
    : reportedOf(ps).flatMap((e) => {
        const at = parseEndpoint(e.endpoint);
        return at ? [{ ...at, kind: "reported" as const }] : [];
      });
  const rtt = (p: Endpoint): number | null => ps.probe.answers.get(formatEndpoint(p))?.rttMs ?? null;
  const found = pathCandidates(peer, reported, rtt, families);
  const roamed = ps.paths.evidence.find((e) => e.source === "roamed");
  if (roamed && selfFamilies(st).has(endpointFamily(roamed.endpoint))) found.push(evidenceCandidate(roamed));
  return found;
}

/**
 * Until this time an unanswered IPv6 candidate is still preferred over IPv4:
 * the seed's 8 s, or (fast) a short grace after IPv4 answered.
 */
export function v6Deadline(st: EngineState, ps: PeerState): number {
  const p = st.cfg.profile;
  const fallback = ps.paths.since + p.v4FallbackMs;
  const v4 = ps.probe.firstV4AnswerAt;
  return v4 === undefined ? fallback : Math.min(fallback, v4 + p.v6GraceMs);
}

/** The endpoint to configure for a peer that is not direct (see chooseEndpoint). */
function choose(st: EngineState, ps: PeerState, now: number): string | undefined {
  // Behind a symmetric NAT, the peer's IPv4 WireGuard mapping toward this
  // host exists only once it sends to us, and then WireGuard roams to it by
  // itself. Every IPv4 guess is wrong, and an apply of a guess that lands
  // just after WireGuard roamed would undo the one working endpoint. So
  // configure none on IPv4: the peer initiates (it has our endpoint), we answer.
  const fams = selfFamilies(st);
  if (peerSymmetric(ps)) fams.delete("ipv4");
  const choice = chooseEndpoint(candidatesOf(st, ps, fams), {
    now,
    failed: ps.paths.failed,
    v6Deadline: v6Deadline(st, ps),
    v4Answered: ps.probe.firstV4AnswerAt !== undefined,
    addsPeer: !ps.applied.inBackend,
  });
  // Every candidate timed out once: start over rather than stop trying.
  if (choice.startOver) ps.paths.failed.clear();
  return choice.endpoint;
}

/** Why a settled peer is not direct, as `scope status` shows it. */
export function notDirectReason(st: EngineState, ps: PeerState): string {
  const selfSym = st.self?.nat.mapping === "endpoint-dependent";
  const peerSym = peerSymmetric(ps);
  if (selfSym && peerSym) return "both peers behind symmetric NAT";
  if (peerSym) return "peer behind symmetric NAT";
  if (selfSym) return "this host behind symmetric NAT";
  if (candidatesOf(st, ps, selfFamilies(st)).length === 0) return "no candidate in a common address family";
  if (ps.probe.answers.size === 0) return "no answer on any candidate";
  return "probes answered but no WireGuard handshake";
}

/** Symmetric NAT on both sides and no IPv6 on both: no direct path can exist (DESIGN §4). */
export function hopeless(st: EngineState, ps: PeerState): boolean {
  const bothSym = st.self?.nat.mapping === "endpoint-dependent" && peerSymmetric(ps);
  return bothSym && candidatesOf(st, ps, new Set<Family>(["ipv6"])).length === 0;
}

/** Since when the chosen endpoint counts as tried: a handshake of this attempt proved the path at its time. */
function triedSince(ps: PeerState): number {
  const { endpointSince, wg, staleHandshakeMs } = ps.paths;
  const hs = wg.lastHandshakeMs;
  return hs !== undefined && hs !== staleHandshakeMs ? Math.max(endpointSince, hs) : endpointSince;
}

/**
 * How long one endpoint gets for a handshake. Once the peer is settled
 * without a direct path, trying the next candidate every 2.5 s forever (one
 * stuck lab peer applied 210 endpoint changes, each an apply and a trigger
 * queued for the backend) costs both sides for nothing: go slower. News (a
 * report, a peerUpdate) still switches at once: the chooser re-ranks on
 * every reconcile.
 */
const tryFor = (st: EngineState, ps: PeerState): number =>
  st.cfg.profile.handshakeTimeoutMs * (ps.paths.settled ? SETTLED_TRY_FACTOR : 1);

/**
 * With a hub to carry the traffic, a pair with a symmetric NAT on either
 * side and no IPv6 in common settles `hub` at once: toward a port-restricted
 * cone it can never go direct, and toward the kinds where it can (full or
 * address-restricted cone) the attempt goes on at the settled pace and
 * upgrades when a handshake proves it. Without a hub only the hopeless pair
 * (symmetric on both sides) is given up at once.
 */
export function settlesAtOnce(st: EngineState, ps: PeerState): boolean {
  // Never toward a hub itself: it has a fixed public endpoint that every NAT
  // kind reaches, and a hub given up on would leave the edge with no hub at all.
  if (st.routing.hubId === undefined || st.routing.hubIds.has(ps.peer.id)) return hopeless(st, ps);
  const sym = st.self?.nat.mapping === "endpoint-dependent" || peerSymmetric(ps);
  // IPv6 in common: the peer has IPv6 candidates and so does this host (a dual-stack peer alone is not enough).
  const v6 = selfFamilies(st).has("ipv6") && candidatesOf(st, ps, new Set<Family>(["ipv6"])).length > 0;
  return sym && !v6;
}

const giveUpAt = (st: EngineState, ps: PeerState): number =>
  ps.paths.since + (settlesAtOnce(st, ps) ? st.cfg.profile.hopelessGiveUpMs : st.cfg.profile.directGiveUpMs);

/** The probe round trip on the family of the endpoint in use (any family while none). */
export function latencyOf(ps: PeerState): number | null {
  const ep = shownEndpoint(ps);
  const fam = ep ? endpointFamily(ep) : undefined;
  let best: number | null = null;
  for (const [to, a] of ps.probe.answers) {
    if (fam && endpointFamily(to) !== fam) continue;
    if (best === null || a.rttMs < best) best = a.rttMs;
  }
  return best;
}

/** The endpoint `scope status` shows: the one in use when direct, else the one being tried. */
export const shownEndpoint = (ps: PeerState): string | undefined =>
  ps.paths.path === "direct" ? (ps.paths.wg.endpoint ?? ps.paths.endpoint) : ps.paths.endpoint;

/**
 * Updates the verdict and the chosen endpoint of one peer; true when the
 * endpoint changed (a handshake should follow the apply).
 */
export function decidePath(
  st: EngineState,
  ps: PeerState,
  now: number,
  hubExists: boolean,
  fx: EngineEffect[],
): boolean {
  const s = ps.paths;
  if (s.path === "direct" && !handshakeProves(ps, now)) {
    // The session expired without a new handshake: the path is gone.
    fx.push(log("warn", "direct path lost", { peer: ps.peer.name }));
    restartAttempt(st, ps, now);
  } else if (s.path === "direct" && directSilent(st, ps, now)) {
    // Probes stopped coming back: the direct path broke (a NAT dropped it).
    // A hub can carry the traffic, so do not wait for the session to expire.
    fx.push(log("warn", "direct path silent: back to the hub", { peer: ps.peer.name }));
    restartAttempt(st, ps, now);
  }
  let changed = false;
  if (!isDirect(ps, now)) {
    if (s.endpoint !== undefined && now >= triedSince(ps) + tryFor(st, ps)) s.failed.add(s.endpoint);
    const next = choose(st, ps, now);
    if (next !== s.endpoint) {
      fx.push(log("debug", "trying endpoint", { peer: ps.peer.name, endpoint: next }));
      s.endpoint = next;
      s.endpointSince = now;
      changed = next !== undefined;
    }
  }
  if (hubExists && isDirect(ps, now) && upgradeAt(st, ps, now) > now) {
    // Proven, but the hub carries the pair until both sides switch together.
    // Settled meanwhile: the traffic flows, and a settled mesh lets the
    // runtime poll stats slowly, so the backend is idle when the switch's
    // apply comes (a stats read in flight delayed it by 100+ ms in the lab).
    Object.assign(s, { settled: true, reason: "direct path proven: moving off the hub", path: "hub" });
    return changed;
  }
  if (isDirect(ps, now)) {
    if (s.path !== "direct") {
      fx.push(
        log("info", "direct path", {
          peer: ps.peer.name,
          endpoint: s.wg.endpoint ?? s.endpoint,
          ...(s.since > 0 ? { ms: Math.round(now - s.since) } : { adopted: true }),
        }),
      );
    }
    // The handshake proved what WireGuard uses now: that is the peer's real mapping.
    if (s.wg.endpoint) {
      learnRoamed(ps, s.wg.endpoint, now);
      s.endpoint = s.wg.endpoint;
    }
    if (s.path !== "direct") s.upgrade.directAt = now;
    Object.assign(s, { path: "direct", settled: true, reason: null });
    return false;
  }
  if (handshakeProves(ps, now)) {
    // The session lives, but WireGuard uses another endpoint than the proven
    // one (a late apply undid a roam): not direct until it is back there.
    Object.assign(s, { settled: false, reason: null, path: hubExists ? "hub" : "pending" });
    return changed;
  }
  if (!s.settled && now >= giveUpAt(st, ps)) {
    s.settled = true;
    s.reason = notDirectReason(st, ps);
    fx.push(log("info", "no direct path", { peer: ps.peer.name, reason: s.reason }));
  } else if (s.settled) {
    // The reason follows the facts (probes answered after the give-up, a
    // candidate that appeared), not the moment the engine gave up.
    s.reason = notDirectReason(st, ps);
  }
  s.path = hubExists ? "hub" : s.settled ? "none" : "pending";
  return changed;
}

/** A hub carries other traffic, and this peer is not that hub. */
const viaHub = (st: EngineState, ps: PeerState): boolean =>
  st.routing.hubId !== undefined && st.routing.hubId !== ps.peer.id;

/**
 * When a proven pair moves from the hub to direct (-Infinity: at once, no
 * hub carries it). Both sides must move together: WireGuard's allowed IPs
 * filter what comes in too, so whichever side moves first drops what the
 * other still sends through the hub. The first side to see the proof picks
 * a time UPGRADE_AFTER_HANDSHAKE_MS ahead and tells the other in an upgrade
 * probe (announceUpgrade); each side keeps the earlier of its own and the
 * announced time. A lost announcement leaves each side on its own time.
 */
export function upgradeAt(st: EngineState, ps: PeerState, now: number): number {
  const s = ps.paths;
  if (s.path === "direct" || !viaHub(st, ps)) return -Infinity;
  if (s.upgrade.at === undefined && isDirect(ps, now)) s.upgrade.at = now + UPGRADE_AFTER_HANDSHAKE_MS;
  return s.upgrade.at ?? Infinity;
}

/**
 * The peer's clock offset within what the sample allows (the truth lies
 * within half its round trip of the estimate), as close to zero as that
 * allows: clocks are usually NTP-synced, and a sample taken while one side
 * was busy is skewed by up to half its round trip (a pong stamped after
 * 100 ms in a busy event loop read as a 50 ms offset between two daemons on
 * one host's clock). Only an offset larger than the sample's error is used.
 */
export function likelyOffset(clock: { offsetMs: number; rttMs: number }): number {
  const beyond = Math.abs(clock.offsetMs) - clock.rttMs / 2;
  return beyond <= 0 ? 0 : Math.sign(clock.offsetMs) * beyond;
}

/**
 * The peer announced its move to the direct path: move at the same moment,
 * or earlier if we chose so. The moment is the peer's `at` on its clock
 * brought to ours with the probes' clock offset; "now + delayMs" would add
 * the time the announcement spent in flight and waiting in a busy event
 * loop (6 ms of skew between the two switches on an idle lab host, each
 * millisecond of it a window in which pings are dropped).
 */
export function noteUpgrade(
  st: EngineState,
  ps: PeerState,
  msg: { delayMs: number; at?: number },
  now: number,
  fx: EngineEffect[],
): boolean {
  const s = ps.paths;
  if (s.path === "direct" || !viaHub(st, ps)) return false;
  const clock = ps.probe.clock;
  const theirs = msg.at !== undefined && clock ? msg.at - likelyOffset(clock) : now + msg.delayMs;
  const at = Math.min(Math.max(theirs, now), now + UPGRADE_AFTER_HANDSHAKE_MS);
  const adopted = s.upgrade.at === undefined || at < s.upgrade.at;
  const tenths = (ms: number): number => Math.round(ms * 10) / 10;
  fx.push(
    log("debug", "upgrade announced", {
      peer: ps.peer.name,
      inMs: tenths(at - now),
      oursInMs: s.upgrade.at === undefined ? null : tenths(s.upgrade.at - now),
      adopted,
      ...(clock ? { offsetMs: tenths(clock.offsetMs), rttMs: tenths(clock.rttMs) } : {}),
    }),
  );
  if (!adopted) return false;
  // Ours is later (or unset): theirs wins, and they need not hear ours.
  s.upgrade = { ...s.upgrade, at, announced: true };
  return true;
}

export const lastAnswerAt = (ps: PeerState): number | undefined => {
  let at: number | undefined;
  for (const a of ps.probe.answers.values()) if (at === undefined || a.at > at) at = a.at;
  return at;
};

/**
 * A direct peer that answered probes since it went direct stopped
 * answering, and a hub could carry it. One that never answered on the
 * direct path (a symmetric NAT's probe mapping can differ) is left to the
 * handshake's age: judging it silent would flap it between hub and direct.
 */
function directSilent(st: EngineState, ps: PeerState, now: number): boolean {
  const at = lastAnswerAt(ps);
  const since = ps.paths.upgrade.directAt;
  return (
    viaHub(st, ps) && at !== undefined && since !== undefined && at > since && now >= at + DIRECT_SILENT_MS
  );
}

/**
 * Probe gap toward a direct peer while a hub stands by, or toward any hub
 * of an edge with a standby (direct or not: a hub that comes back must be
 * seen soon): often enough to notice a broken path (directSilent) or a hub
 * that died or returned (routing.ts).
 */
export const directCheckGap = (st: EngineState, ps: PeerState): number | undefined =>
  (ps.paths.path === "direct" && viaHub(st, ps)) ||
  (st.routing.watchedSince !== undefined && st.routing.hubIds.has(ps.peer.id))
    ? DIRECT_CHECK_MS
    : undefined;

/** The paths slice's future deadlines for one peer. */
export function pathDeadlines(st: EngineState, ps: PeerState, out: number[]): void {
  const s = ps.paths;
  const hs = s.wg.lastHandshakeMs;
  // A direct path ends when its handshake gets too old (no stats change tells).
  if (hs !== undefined && hs !== s.staleHandshakeMs) out.push(hs + HANDSHAKE_FRESH_MS);
  const answered = lastAnswerAt(ps);
  if (
    s.path === "direct" &&
    viaHub(st, ps) &&
    answered !== undefined &&
    answered > (s.upgrade.directAt ?? Infinity)
  )
    out.push(answered + DIRECT_SILENT_MS);
  if (s.path === "direct") return;
  if (s.upgrade.at !== undefined) out.push(s.upgrade.at);
  if (viaHub(st, ps)) out.push(s.since + st.cfg.profile.hubAfterMs);
  if (s.endpoint !== undefined) out.push(s.nextTriggerAt, triedSince(ps) + tryFor(st, ps));
  out.push(v6Deadline(st, ps));
  if (!s.settled) out.push(giveUpAt(st, ps));
}

/** Starts a new attempt: paths and probing start over, and reports are due again. */
export function restartAttempt(st: EngineState, ps: PeerState, now: number): void {
  restartPaths(ps, now);
  Object.assign(ps.probe, {
    round: 0,
    settledRound: 0,
    nextAt: now,
    answers: new Map(),
    firstV4AnswerAt: undefined,
  });
  ps.report.dueAt = now + st.cfg.profile.reportAfterMs;
  st.unsettled.add(ps.peer.id);
  st.dirty.peers.add(ps.peer.id);
}
