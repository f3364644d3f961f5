/**
 * From the facts in the state to paths and effects, after every input.
 * Order inside one call matters and mirrors DESIGN §4: decide endpoints,
 * apply the peer set, only then trigger handshakes (WireGuard must know a
 * peer before its handshake arrives), then tell peers what we saw.
 */
import { parseEndpoint } from "../ip.js";
import { messageType, type PostMessage } from "../protocol.js";
import { gapAt } from "../timers.js";
import {
  candidatesOf,
  chooseEndpoint,
  desiredKey,
  desiredPeers,
  hopeless,
  isDirect,
  latencyOf,
  notDirectReason,
  probeFamilies,
  currentHub,
  restartAttempt,
  v6Deadline,
} from "./peer.js";
import { log, pruneProbeState, sendPings } from "./probing.js";
import type { EngineEffect, EngineState, PeerState } from "./types.js";

/** Retrigger gap toward a peer already settled as not direct: keepalives do most of the work. */
const SETTLED_RETRIGGER_MS = 30_000;

export function reconcile(st: EngineState, now: number, fx: EngineEffect[]): void {
  pruneProbeState(st, now);
  const hub = currentHub(st, now);
  const triggers: PeerState[] = [];
  for (const ps of st.peers.values()) {
    if (decidePath(st, ps, now, hub !== undefined, fx)) triggers.push(ps);
    probe(st, ps, now, fx);
  }

  const desired = desiredPeers(st, now);
  const key = desiredKey(st, desired);
  // WireGuard sends an initiation by itself when a peer with a keepalive is
  // added. A trigger now would re-create the peer a few ms later: the other
  // side drops an initiation that follows the previous one within 20 ms and
  // the answer to the first finds no one, so neither completes (5 s lost).
  const addedWithEndpoint = new Set<PeerState>();
  if (key !== st.lastApplied) {
    st.lastApplied = key;
    fx.push({ type: "applyPeers", peers: desired });
    for (const ps of st.peers.values()) {
      ps.steer = false;
      if (!ps.inBackend && ps.endpoint !== undefined) addedWithEndpoint.add(ps);
      ps.inBackend = true;
    }
  }

  for (const ps of st.peers.values()) {
    if (ps.announceApplied) {
      ps.announceApplied = false;
      post(fx, {
        type: messageType("peerReport") as "cc.ltgc.scope:peerReport",
        to: ps.peer.id,
        body: { about: ps.peer.id, applied: true },
      });
    }
    const due = ps.path !== "direct" && ps.endpoint !== undefined && now >= ps.nextTriggerAt;
    if (due || triggers.includes(ps)) {
      if (ps.endpoint !== undefined && ps.path !== "direct" && !addedWithEndpoint.has(ps))
        fx.push({ type: "triggerHandshake", publicKey: ps.peer.wgPublicKey });
      ps.nextTriggerAt =
        now +
        (ps.settled ? SETTLED_RETRIGGER_MS : gapAt(st.cfg.profile.retriggerGapsMs, ps.retriggerRound++));
    }
    report(ps, now, fx);
  }

  maybePeerConn(st, now, fx);
  scheduleTick(st, now, fx);
}

/** Updates ps.path/endpoint/settled; true when the endpoint changed (a handshake should follow the apply). */
function decidePath(
  st: EngineState,
  ps: PeerState,
  now: number,
  hubExists: boolean,
  fx: EngineEffect[],
): boolean {
  const p = st.cfg.profile;
  if (isDirect(ps, now)) {
    if (ps.path !== "direct") {
      fx.push(
        log("info", "direct path", {
          peer: ps.peer.name,
          endpoint: ps.statsEndpoint ?? ps.endpoint,
          ...(ps.since > 0 ? { ms: now - ps.since } : { adopted: true }),
        }),
      );
    }
    // Roaming: what WireGuard uses now is the peer's real mapping. Keep it.
    if (ps.statsEndpoint) ps.endpoint = ps.roamed = ps.statsEndpoint;
    Object.assign(ps, { path: "direct", settled: true, reason: null });
    return false;
  }
  if (ps.path === "direct") {
    // The session expired without a new handshake: the path is gone.
    fx.push(log("warn", "direct path lost", { peer: ps.peer.name }));
    restartAttempt(st, ps, now);
  }
  if (ps.endpoint !== undefined && now >= ps.endpointSince + p.handshakeTimeoutMs) ps.failed.add(ps.endpoint);
  const next = chooseEndpoint(st, ps, now);
  let changed = false;
  if (next !== ps.endpoint) {
    fx.push(log("debug", "trying endpoint", { peer: ps.peer.name, endpoint: next }));
    ps.endpoint = next;
    ps.steer = next !== undefined;
    ps.endpointSince = now;
    changed = next !== undefined;
  }
  const giveUpAt = ps.since + (hopeless(st, ps) ? p.hopelessGiveUpMs : p.directGiveUpMs);
  if (!ps.settled && now >= giveUpAt) {
    ps.settled = true;
    ps.reason = notDirectReason(st, ps);
    fx.push(log("info", "no direct path", { peer: ps.peer.name, reason: ps.reason }));
  }
  ps.path = hubExists ? "hub" : ps.settled ? "none" : "pending";
  return changed;
}

function probe(st: EngineState, ps: PeerState, now: number, fx: EngineEffect[]): void {
  if (!ps.key || now < ps.nextProbeAt) return;
  const fams = probeFamilies(st, ps, now);
  const targets = candidatesOf(st, ps, fams).flatMap((c) => c.probes);
  sendPings(st, ps.peer.id, ps.key, targets, now, fx);
  const p = st.cfg.profile;
  ps.nextProbeAt = now + (ps.settled ? p.settledProbeGapMs : gapAt(p.probeGapsMs, ps.probeRound));
  ps.probeRound++;
}

/**
 * Tell the peer what we see of it: where its probes and (once direct) its
 * WireGuard traffic come from. The WireGuard endpoint is what a peer behind
 * a port-shifting NAT cannot learn any other way. Sent to the subject only;
 * it republishes what is new through updateSelf.
 */
function report(ps: PeerState, now: number, fx: EngineEffect[]): void {
  if (now < ps.reportDueAt) return;
  const wg = ps.path === "direct" && ps.statsEndpoint ? parseEndpoint(ps.statsEndpoint) : undefined;
  if (!wg && !ps.probeFrom) return;
  const key = JSON.stringify([wg, ps.probeFrom, ps.path]);
  if (key === ps.lastReport) return;
  ps.lastReport = key;
  const latency = latencyOf(ps);
  post(fx, {
    type: messageType("peerReport") as "cc.ltgc.scope:peerReport",
    to: ps.peer.id,
    body: {
      about: ps.peer.id,
      ...(ps.probeFrom ? { probeEndpoint: ps.probeFrom } : {}),
      ...(wg ? { wgEndpoint: wg } : {}),
      ...(latency !== null ? { latencyMs: latency } : {}),
      ...(ps.path === "none" ? {} : { path: ps.path }),
    },
  });
}

function maybePeerConn(st: EngineState, now: number, fx: EngineEffect[]): void {
  if (st.peerConnSent || !st.self) return;
  const p = st.cfg.profile;
  const allSettled = [...st.peers.values()].every((ps) => ps.settled);
  if ((p.peerConnWhenSettled && allSettled) || now >= st.joinedAt + p.peerConnAfterMs) {
    st.peerConnSent = true;
    post(fx, { type: messageType("peerConn") as "cc.ltgc.scope:peerConn", body: { peerId: st.self.id } });
    fx.push(log("info", "peerConn sent", { ms: now - st.joinedAt, settled: allSettled }));
  }
}

const post = (fx: EngineEffect[], message: PostMessage): void => {
  fx.push({ type: "postMessage", message });
};

/** One timer: wake at the earliest future deadline. */
function scheduleTick(st: EngineState, now: number, fx: EngineEffect[]): void {
  const p = st.cfg.profile;
  const deadlines: number[] = [];
  if (!st.peerConnSent) deadlines.push(st.joinedAt + p.peerConnAfterMs);
  for (const ps of st.peers.values()) {
    deadlines.push(ps.nextProbeAt, ps.reportDueAt);
    if (ps.path === "direct") continue;
    if (ps.endpoint !== undefined) deadlines.push(ps.nextTriggerAt, ps.endpointSince + p.handshakeTimeoutMs);
    deadlines.push(v6Deadline(st, ps));
    if (!ps.settled) deadlines.push(ps.since + (hopeless(st, ps) ? p.hopelessGiveUpMs : p.directGiveUpMs));
  }
  const future = deadlines.filter((d) => d > now);
  const at = future.length > 0 ? Math.min(...future) : undefined;
  if (at === st.timerAt) return;
  st.timerAt = at;
  if (at === undefined) fx.push({ type: "clearTimer", name: "tick" });
  else fx.push({ type: "setTimer", name: "tick", delayMs: at - now });
}
