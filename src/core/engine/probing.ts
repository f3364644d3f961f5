/**
 * The probing part of the paths slice: probe rounds toward each peer, the
 * nonce and outstanding-ping bookkeeping, and received probes.
 *
 * A received probe that fails any check (unknown sender, bad MAC, stale,
 * replayed, a pong nobody asked for) returns false before anything else
 * runs: step() then does no reconcile at all, so a flood of junk costs a
 * MAC check per datagram and nothing that grows with the mesh.
 */
import { endpointFamily, familyOf, formatEndpoint, parseEndpoint } from "../ip.js";
import {
  acceptFresh,
  decodeProbe,
  encodeProbe,
  probeSender,
  pruneSeen,
  type ProbeMessage,
} from "../probe/codec.js";
import type { Endpoint } from "../protocol.js";
import {
  CLOCK_SAMPLE_TTL_MS,
  gapAt,
  PING_TTL_MS,
  PROBE_PRUNE_EVERY_MS,
  PROBE_WINDOW_MS,
  RTT_SAMPLES,
  SETTLED_PROBE_GRID_MS,
} from "../timers.js";
import { log } from "./log.js";
import { candidatesOf, directCheckGap, noteUpgrade, selfFamilies, shownEndpoint } from "./paths.js";
import type { EngineEffect, EngineState, PeerState, ProbeBook, ProbeState } from "./types.js";

export const newProbeBook = (): ProbeBook => ({
  pingsOut: new Map(),
  seenNonces: new Map(),
  nonceCounter: 0,
  prunedAt: 0,
});

export const newProbeState = (now: number): ProbeState => ({
  round: 0,
  settledRound: 0,
  nextAt: now,
  answers: new Map(),
  firstV4AnswerAt: undefined,
  source: undefined,
  skewMs: undefined,
  skewRejected: 0,
  clock: undefined,
});

function nextNonce(st: EngineState): string {
  st.probes.nonceCounter = (st.probes.nonceCounter + 1) >>> 0;
  return st.cfg.nonceSalt + st.probes.nonceCounter.toString(16).padStart(8, "0");
}

function pong(st: EngineState, now: number, echoNonce: string, observed: Endpoint): ProbeMessage {
  return { type: "pong", sender: st.self?.id ?? "", nonce: nextNonce(st), time: now, echoNonce, observed };
}

/** Forgets old pings and nonces, at most every PROBE_PRUNE_EVERY_MS. */
export function pruneProbeBook(st: EngineState, now: number): void {
  const b = st.probes;
  if (now < b.prunedAt + PROBE_PRUNE_EVERY_MS) return;
  b.prunedAt = now;
  for (const [n, p] of b.pingsOut) if (now - p.sentAt > PING_TTL_MS) b.pingsOut.delete(n);
  pruneSeen(b.seenNonces, now);
}

/** Families to probe now: seed probes IPv6 alone first and IPv4 only for peers silent on IPv6 at 8 s. */
function probeFamilies(st: EngineState, ps: PeerState, now: number): Set<string> {
  const mine = selfFamilies(st);
  if (st.cfg.profile.probeAllFamilies || !mine.has("ipv6")) return mine;
  const v6 = candidatesOf(st, ps, new Set(["ipv6"])).filter((c) => c.source !== "roamed");
  if (v6.length === 0) return mine;
  if (now < ps.paths.since + st.cfg.profile.v4FallbackMs || v6.some((c) => c.rttMs !== null))
    return new Set(["ipv6"]);
  return mine;
}

/** A probe round toward ps if one is due. */
export function probePeer(st: EngineState, ps: PeerState, now: number, fx: EngineEffect[]): void {
  const key = ps.key;
  if (!key || now < ps.probe.nextAt) return;
  const fams = probeFamilies(st, ps, now);
  let targets = candidatesOf(st, ps, fams as Set<"ipv4" | "ipv6">).flatMap((c) => c.probes);
  // Where the peer's pings come from answers too: behind a symmetric NAT it
  // is the only address that does, and it gives the pair a latency.
  const src = ps.probe.source;
  if (src && fams.has(familyOf(src.address)) && !targets.some((t) => sameEndpoint(t, src))) targets.push(src);
  // Settled and direct, a round only refreshes the latency shown: one target
  // that answered on the family in use is enough (WireGuard carries liveness).
  if (ps.paths.settled && ps.paths.path === "direct") targets = settledTarget(ps, targets);
  for (const to of targets) {
    const nonce = nextNonce(st);
    st.probes.pingsOut.set(nonce, { peerId: ps.peer.id, to: formatEndpoint(to), sentAt: now });
    fx.push({
      type: "sendProbe",
      to,
      bytes: encodeProbe({ type: "ping", sender: st.self?.id ?? "", nonce, time: now }, key),
    });
  }
  const p = st.cfg.profile;
  const q = ps.probe;
  const check = directCheckGap(st, ps);
  if (!ps.paths.settled) {
    const gap = gapAt(p.probeGapsMs, q.round++);
    q.nextAt = now + Math.min(gap, check ?? gap);
    return;
  }
  const gap = gapAt(p.settledProbeGapsMs, q.settledRound++);
  // A direct path beside a standing hub is checked every second (paths.ts); the rest sits on the grid.
  if (check !== undefined && check < gap) q.nextAt = now + check;
  else q.nextAt = gap < SETTLED_PROBE_GRID_MS ? now + gap : onGrid(now + gap);
}

/**
 * Tells the peer when we move our pair from the hub to the direct path
 * (paths.ts upgradeAt), once per attempt, at every probe address of the
 * peer that answered and where its pings come from.
 */
export function announceUpgrade(st: EngineState, ps: PeerState, now: number, fx: EngineEffect[]): void {
  const u = ps.paths.upgrade;
  if (u.at === undefined || u.announced || !ps.key) return;
  u.announced = true;
  const delayMs = Math.max(0, Math.round(u.at - now));
  const targets = [...ps.probe.answers.keys()].flatMap((t) => parseEndpoint(t) ?? []);
  const src = ps.probe.source;
  if (src && !targets.some((t) => sameEndpoint(t, src))) targets.push(src);
  for (const to of targets) {
    const msg = {
      type: "upgrade" as const,
      sender: st.self?.id ?? "",
      nonce: nextNonce(st),
      time: now,
      delayMs,
      at: u.at,
    };
    fx.push({ type: "sendProbe", to, bytes: encodeProbe(msg, ps.key) });
  }
}

/** The first grid line at or after t: settled rounds toward 40 peers cost a few wake-ups, not 40. */
const onGrid = (t: number): number => Math.ceil(t / SETTLED_PROBE_GRID_MS) * SETTLED_PROBE_GRID_MS;

/** The answered target on the family of the endpoint in use with the lowest round trip; all when none answered. */
function settledTarget(ps: PeerState, targets: Endpoint[]): Endpoint[] {
  const ep = shownEndpoint(ps);
  const fam = ep ? endpointFamily(ep) : undefined;
  let best: { to: Endpoint; rtt: number } | undefined;
  for (const to of targets) {
    const a = ps.probe.answers.get(formatEndpoint(to));
    if (!a || (fam && familyOf(to.address) !== fam)) continue;
    if (!best || a.rttMs < best.rtt) best = { to, rtt: a.rttMs };
  }
  return best ? [best.to] : targets;
}

const sameEndpoint = (a: Endpoint, b: Endpoint): boolean => a.address === b.address && a.port === b.port;

/** from is one of the peer's published addresses, or one WireGuard saw it use. */
function knownAddress(ps: PeerState, address: string): boolean {
  return (
    ps.peer.candidates.some((c) => c.address === address) ||
    ps.paths.evidence.some((e) => parseEndpoint(e.endpoint)?.address === address) ||
    (ps.paths.wg.endpoint !== undefined && parseEndpoint(ps.paths.wg.endpoint)?.address === address)
  );
}

/**
 * One received datagram on the probe socket. Returns the peer whose facts
 * changed (step reconciles only it), or undefined: rejected, or nothing new.
 */
export function receiveProbe(
  st: EngineState,
  from: Endpoint,
  bytes: Uint8Array,
  now: number,
  fx: EngineEffect[],
): PeerState | undefined {
  const sender = probeSender(bytes);
  const ps = sender === undefined ? undefined : st.peers.get(sender);
  if (!ps?.key) return undefined;
  const msg = decodeProbe(bytes, ps.key);
  if (!msg) return undefined; // forged: dropped without a trace in the state
  const windowMs = st.cfg.probeWindowMs ?? PROBE_WINDOW_MS;
  // Genuine (the MAC holds) but from too far in the past or future: the
  // peer's clock, or ours, is off, and probing will never work until it is
  // fixed. Say so once, and in status; never silently. (A replay older than
  // the window lands here too; it changes nothing but this figure.)
  if (Math.abs(now - msg.time) > windowMs) return noteSkew(ps, msg.time - now, fx);
  if (!acceptFresh(st.probes.seenNonces, msg, now, windowMs)) return undefined; // replayed
  if (ps.probe.skewMs !== undefined) {
    ps.probe.skewMs = undefined;
    fx.push(log("info", "probe clock back within the window", { peer: ps.peer.name }));
  }
  if (msg.type === "ping") {
    // A valid ping can be replayed by anyone who saw it before we did (one
    // sent before we knew its sender was never recorded as seen). Answer only
    // at an address the peer is known to use: never reflect to a stranger.
    if (!knownAddress(ps, from.address)) {
      fx.push(
        log("debug", "ping from an address the peer never announced: not answered", {
          peer: ps.peer.name,
          from: formatEndpoint(from),
        }),
      );
      return undefined;
    }
    fx.push({ type: "sendProbe", to: from, bytes: encodeProbe(pong(st, now, msg.nonce, from), ps.key) });
    const old = ps.probe.source;
    if (old && sameEndpoint(old, from)) return undefined;
    ps.probe.source = from;
    return ps;
  }
  if (msg.type === "upgrade") return noteUpgrade(st, ps, msg, now, fx) ? ps : undefined;
  const out = st.probes.pingsOut.get(msg.echoNonce);
  if (!out || out.peerId !== ps.peer.id) return undefined;
  st.probes.pingsOut.delete(msg.echoNonce);
  const first = ps.probe.answers.size === 0;
  const rttMs = Math.max(0, now - out.sentAt);
  recordRtt(ps.probe, out.to, rttMs, now);
  noteClock(ps.probe, out.sentAt, rttMs, msg.time, now);
  if (familyOf(parseEndpoint(out.to)?.address ?? "") === "ipv4") ps.probe.firstV4AnswerAt ??= now;
  // First sign of life: WireGuard may have dropped our handshake before the
  // peer knew us; try again now rather than in 5 s.
  if (first && ps.paths.path !== "direct") ps.paths.nextTriggerAt = now;
  return ps;
}

function noteSkew(ps: PeerState, skewMs: number, fx: EngineEffect[]): undefined {
  ps.probe.skewRejected++;
  if (ps.probe.skewMs === undefined)
    fx.push(
      log("warn", `probes from ${ps.peer.name} rejected: clock off by ${Math.round(skewMs / 1000)} s`, {
        peer: ps.peer.name,
      }),
    );
  ps.probe.skewMs = skewMs;
  return undefined;
}

/**
 * The peer stamped its pong at `peerTime` somewhere between our ping's
 * departure and the pong's arrival; assuming the middle, its clock is
 * `peerTime - (sentAt + now) / 2` ahead of ours, wrong by at most half the
 * round trip. The sample with the shortest round trip wins until it is
 * CLOCK_SAMPLE_TTL_MS old (clocks drift, paths change).
 */
export function noteClock(p: ProbeState, sentAt: number, rttMs: number, peerTime: number, now: number): void {
  const old = p.clock;
  if (old && rttMs > old.rttMs && now - old.at < CLOCK_SAMPLE_TTL_MS) return;
  p.clock = { offsetMs: peerTime - (sentAt + now) / 2, rttMs, at: now };
}

/** A round trip to target: the figure is the lowest of the last RTT_SAMPLES, so one busy moment does not stick. */
export function recordRtt(p: ProbeState, target: string, rttMs: number, now: number): void {
  const old = p.answers.get(target);
  const samples = [...(old?.samples ?? []), rttMs].slice(-RTT_SAMPLES);
  p.answers.set(target, { rttMs: Math.min(...samples), samples, at: now });
}
