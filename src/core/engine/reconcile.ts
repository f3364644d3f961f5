/**
 * From the facts in the state to paths and effects, after every input that
 * changed something. Only peers whose facts changed (dirty) or whose
 * deadline is due are looked at; a global change (this host moved, the hub
 * changed, a join) marks every peer.
 *
 * Order inside one call matters and mirrors DESIGN §4: decide endpoints,
 * apply the peer set, only then trigger handshakes (WireGuard must know a
 * peer before its handshake arrives), then tell peers what we saw.
 */
import type { DesiredPeer } from "../backend.js";
import { messageType } from "../protocol.js";
import { gapAt, SETTLED_RETRIGGER_MS } from "../timers.js";
import { compact, nextDeadline, pushDeadline, takeDue } from "./deadlines.js";
import { applyAll, entryOf, sameEntry, steering } from "./desired.js";
import { kexDeadline, kexWork } from "./kex.js";
import { log } from "./log.js";
import { decidePath, isDirect, pathDeadlines } from "./paths.js";
import { announceUpgrade, probePeer, pruneProbeBook } from "./probing.js";
import { announceApplied, post, report, reportDeadline } from "./reports.js";
import { refreshRouting, routingDeadlines, wireguardPeers } from "./routing.js";
import type { EngineEffect, EngineState, PeerState } from "./types.js";

export function reconcile(st: EngineState, now: number, fx: EngineEffect[]): void {
  if (!st.admin.active) {
    // Paused by the user: no applies, no triggers, no probes, no timer.
    st.dirty = { peers: new Set(), all: false, membership: st.dirty.membership };
    scheduleTick(st, now, fx, undefined);
    return;
  }
  pruneProbeBook(st, now);
  const current = (id: string): number | undefined => st.peers.get(id)?.dueAt;
  const due = takeDue(st.deadlines, now, current);

  refreshRouting(st, now, fx); // a new hub marks every peer dirty: their allowed IPs may change
  const hubId = st.routing.hubId;
  const dirty: PeerState[] = [];
  if (st.dirty.all) dirty.push(...st.peers.values());
  else {
    for (const id of new Set([...st.dirty.peers, ...due])) {
      const ps = st.peers.get(id);
      if (ps) dirty.push(ps);
    }
  }
  const work = wireguardPeers(st, dirty);
  const membership = st.dirty.membership;
  st.dirty = { peers: new Set(), all: false, membership: false };

  const triggers = new Set<PeerState>();
  const entries = new Map<string, DesiredPeer>();
  let changed = membership;
  for (const ps of work) {
    const hubNow = hubId !== undefined && now >= ps.paths.since + st.cfg.profile.hubAfterMs;
    if (decidePath(st, ps, now, hubNow, fx)) triggers.add(ps);
    announceUpgrade(st, ps, now, fx);
    if (ps.paths.settled) st.unsettled.delete(ps.peer.id);
    else st.unsettled.add(ps.peer.id);
    probePeer(st, ps, now, fx);
    kexWork(st, ps, now, fx);
    const entry = entryOf(st, ps, ps.paths.path === "direct", hubNow);
    entries.set(ps.peer.id, entry);
    if (!sameEntry(ps.applied.entry, entry) || steering(ps)) changed = true;
  }

  // WireGuard sends an initiation by itself when a peer with a keepalive is
  // added. A trigger now would re-create the peer a few ms later: the other
  // side drops an initiation that follows the previous one within 20 ms and
  // the answer to the first finds no one, so neither completes (5 s lost).
  const addedWithEndpoint = new Set<PeerState>();
  if (changed) {
    for (const ps of st.peers.values())
      if (!ps.applied.inBackend && ps.paths.endpoint !== undefined) addedWithEndpoint.add(ps);
    fx.push({ type: "applyPeers", peers: applyAll(st, entries, now) });
    for (const ps of st.peers.values()) if (ps.applied.entry) ps.applied.inBackend = true;
  }

  for (const ps of work) {
    announceApplied(ps, fx);
    const s = ps.paths;
    // Proven but waiting to switch from the hub (upgradeAt): a new handshake would only move the switch.
    const due =
      s.path !== "direct" &&
      !isDirect(ps, now) &&
      // An announced move that our own stats never confirmed must not stop the retries for good.
      (s.upgrade.at === undefined || now >= s.upgrade.at + st.cfg.profile.handshakeTimeoutMs) &&
      s.endpoint !== undefined &&
      now >= s.nextTriggerAt;
    if (due || triggers.has(ps)) {
      if (s.endpoint !== undefined && s.path !== "direct" && !addedWithEndpoint.has(ps))
        fx.push({
          type: "triggerHandshake",
          publicKey: ps.peer.wgPublicKey,
          seenHandshakeMs: s.wg.lastHandshakeMs ?? 0,
        });
      s.nextTriggerAt =
        now + (s.settled ? SETTLED_RETRIGGER_MS : gapAt(st.cfg.profile.retriggerGapsMs, s.retriggerRound++));
    }
    report(ps, now, fx, st.cfg.profile.reportOnlyNews);
    schedulePeer(st, ps, now);
  }

  maybePeerConn(st, now, fx);
  if (st.deadlines.heap.length > 4 * st.peers.size + 64)
    compact(
      st.deadlines,
      [...st.peers.values()].map((ps) => [ps.peer.id, ps.dueAt]),
    );
  scheduleTick(st, now, fx, nextDeadline(st.deadlines, current));
}

/** The earliest future deadline of one peer, over its slices. */
function schedulePeer(st: EngineState, ps: PeerState, now: number): void {
  const out: number[] = [ps.probe.nextAt];
  reportDeadline(ps, out);
  pathDeadlines(st, ps, out);
  routingDeadlines(st, ps, out);
  const kex = kexDeadline(ps, st.cfg.kex !== undefined);
  if (kex !== undefined) out.push(kex);
  let at: number | undefined;
  for (const d of out) if (d > now && (at === undefined || d < at)) at = d;
  if (at === ps.dueAt) return;
  ps.dueAt = at;
  if (at !== undefined) pushDeadline(st.deadlines, ps.peer.id, at);
}

function maybePeerConn(st: EngineState, now: number, fx: EngineEffect[]): void {
  if (st.peerConnSent || !st.self) return;
  const p = st.cfg.profile;
  const allSettled = st.unsettled.size === 0;
  if ((p.peerConnWhenSettled && allSettled) || now >= st.joinedAt + p.peerConnAfterMs) {
    st.peerConnSent = true;
    post(fx, { type: messageType("peerConn") as "cc.ltgc.scope:peerConn", body: { peerId: st.self.id } });
    fx.push(log("info", "peerConn sent", { ms: Math.round(now - st.joinedAt), settled: allSettled }));
  }
}

/** One timer: wake at the earliest future deadline of any slice. */
function scheduleTick(st: EngineState, now: number, fx: EngineEffect[], peersAt: number | undefined): void {
  let at = peersAt;
  if (st.admin.active && !st.peerConnSent && st.self) {
    const conn = st.joinedAt + st.cfg.profile.peerConnAfterMs;
    if (conn > now && (at === undefined || conn < at)) at = conn;
  }
  if (at === st.timerAt) return;
  st.timerAt = at;
  if (at === undefined) fx.push({ type: "clearTimer", name: "tick" });
  else fx.push({ type: "setTimer", name: "tick", delayMs: at - now });
}
