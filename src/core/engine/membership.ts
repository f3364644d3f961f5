/**
 * The peer set: who is in the mesh, from the join answer, registry events
 * and resyncs. Each handler changes facts and marks the peers it touched
 * dirty; reconcile.ts works out what follows.
 */
import type { PeerStats } from "../backend.js";
import type { Candidate, Event, JoinResponse, Peer } from "../protocol.js";
import { newAppliedState } from "./desired.js";
import { newKexState, onKexMessage } from "./kex.js";
import { log } from "./log.js";
import {
  forgetEndpoints,
  isDirect,
  learnReported,
  learnRoamed,
  newPathState,
  restartAttempt,
} from "./paths.js";
import { newProbeState } from "./probing.js";
import { newReportState } from "./reports.js";
import { noteRole } from "./routing.js";
import { learnSelfEndpoint } from "./self.js";
import type { EngineEffect, EngineState, PeerState } from "./types.js";
import { formatEndpoint } from "../ip.js";

function newPeerState(st: EngineState, peer: Peer, now: number): PeerState {
  let key: Uint8Array | undefined;
  try {
    key = st.cfg.identity.pairKey(peer.identityKey);
  } catch {
    key = undefined;
  }
  return {
    peer,
    key,
    paths: newPathState(now),
    probe: newProbeState(now),
    report: newReportState(now + st.cfg.profile.reportAfterMs),
    kex: newKexState(st.self?.wgPublicKey, peer.wgPublicKey, now),
    applied: newAppliedState(),
    dueAt: undefined,
  };
}

function insert(st: EngineState, ps: PeerState): void {
  st.peers.set(ps.peer.id, ps);
  st.byKey.set(ps.peer.wgPublicKey, ps);
  noteRole(st.routing, ps.peer, true);
  st.unsettled.add(ps.peer.id);
  st.dirty.peers.add(ps.peer.id);
  st.dirty.membership = true;
}

export function removePeer(st: EngineState, id: string): boolean {
  const ps = st.peers.get(id);
  if (!ps) return false;
  st.peers.delete(id);
  if (st.byKey.get(ps.peer.wgPublicKey) === ps) st.byKey.delete(ps.peer.wgPublicKey);
  noteRole(st.routing, ps.peer, false);
  st.unsettled.delete(id);
  st.dirty.peers.delete(id);
  st.dirty.membership = true;
  return true;
}

/** Replaces a peer's record, keeping the key map and hub set in step. */
function setRecord(st: EngineState, ps: PeerState, peer: Peer): void {
  if (ps.peer.wgPublicKey !== peer.wgPublicKey) {
    st.byKey.delete(ps.peer.wgPublicKey);
    st.byKey.set(peer.wgPublicKey, ps);
    st.dirty.membership = true;
  }
  ps.peer = peer;
  noteRole(st.routing, peer, true);
  st.dirty.peers.add(peer.id);
}

export function onJoined(st: EngineState, r: JoinResponse, existing: PeerStats[], now: number): void {
  st.self = r.self;
  st.network = r.network;
  st.joinedAt = now;
  st.peerConnSent = false;
  st.reportedSelf = r.self.candidates.filter((c) => c.kind === "reported");
  const live = new Map(existing.map((s) => [s.publicKey, s]));
  for (const peer of r.peers) {
    if (peer.id === r.self.id) continue;
    const old = st.peers.get(peer.id);
    const ps = old ?? newPeerState(st, peer, now);
    if (old) setRecord(st, ps, peer);
    else insert(st, ps);
    const s = live.get(peer.wgPublicKey);
    if (s) {
      // A tunnel that survived a daemon restart: adopt it as it is, so the
      // first apply changes nothing (never remove and re-add a working peer).
      ps.paths.wg = { endpoint: s.endpoint, lastHandshakeMs: s.lastHandshakeMs };
      if (s.endpoint) learnRoamed(ps, s.endpoint, now);
      ps.paths.endpoint = ps.applied.endpoint = s.endpoint;
      ps.paths.since = 0;
      ps.applied.inBackend = true;
    }
  }
  st.dirty.all = true;
}

/** Candidates that say where the peer is (reported ones only say what others saw). */
const own = (p: Peer): Candidate[] => p.candidates.filter((c) => c.kind !== "reported");
const sameCandidate = (a: Candidate, b: Candidate): boolean =>
  a.address === b.address && a.port === b.port && a.kind === b.kind;
const samePorts = (a: Peer, b: Peer): boolean =>
  a.listenPort === b.listenPort && a.probePort === b.probePort && a.wgPublicKey === b.wgPublicKey;

function addOrUpdatePeer(st: EngineState, peer: Peer, now: number, joined: boolean): void {
  if (st.self && peer.id === st.self.id) {
    // What this host publishes is its own to say: a record the registry
    // stored earlier (a peer list read before our last updateSelf landed)
    // must not bring back old candidates. The rest (role, address) is the registry's.
    st.self = { ...peer, candidates: st.self.candidates, nat: st.self.nat };
    st.dirty.all = true;
    return;
  }
  const ps = st.peers.get(peer.id);
  if (!ps) {
    const fresh = newPeerState(st, peer, now);
    fresh.report.announceApplied = joined && st.cfg.profile.confirmApplied;
    insert(st, fresh);
    return;
  }
  const [was, is] = [own(ps.peer), own(peer)];
  const sameOwn = was.length === is.length && was.every((c, i) => sameCandidate(c, is[i] as Candidate));
  const moved = !samePorts(ps.peer, peer) || !sameOwn;
  // A peer that only gained an address (a new link on its host) keeps a
  // working session: restarting would re-create it in WireGuard mid-flow.
  const onlyGained =
    samePorts(ps.peer, peer) &&
    was.every((c) => is.some((n) => n.address === c.address && n.port === c.port));
  setRecord(st, ps, peer);
  if ((moved && !(onlyGained && isDirect(ps, now))) || joined) {
    // The peer changed its candidates (or re-joined): start over. Its last
    // session's endpoint stays first choice only while its address is still
    // one of the peer's (a republish); after a real move it is dead.
    restartAttempt(st, ps, now);
    forgetEndpoints(ps, peer);
    ps.report.announceApplied = joined && st.cfg.profile.confirmApplied;
  }
}

export function onEvent(st: EngineState, ev: Event, now: number, fx: EngineEffect[]): void {
  const selfId = st.self?.id;
  if (ev.to !== undefined && ev.to !== selfId) return;
  switch (ev.type) {
    case "cc.ltgc.scope:peerJoin":
      addOrUpdatePeer(st, ev.body, now, true);
      break;
    case "cc.ltgc.scope:peerUpdate":
      addOrUpdatePeer(st, ev.body, now, false);
      break;
    case "cc.ltgc.scope:peerLeave":
      if (ev.body.peerId === selfId) fx.push({ type: "selfRemoved" });
      else if (removePeer(st, ev.body.peerId)) fx.push(log("info", "peer left", { peer: ev.body.peerId }));
      break;
    case "cc.ltgc.scope:peerConn": {
      // The seed's step 6: peers that did not see the newcomer connect back now.
      const ps = st.peers.get(ev.body.peerId);
      if (ps && ps.paths.path !== "direct") {
        ps.paths.nextTriggerAt = now;
        ps.probe.nextAt = now;
        st.dirty.peers.add(ps.peer.id);
      }
      break;
    }
    case "cc.ltgc.scope:peerReport": {
      const b = ev.body;
      if (b.about === selfId) {
        const from = st.peers.get(ev.from);
        if (b.applied && from && from.paths.path !== "direct") {
          from.paths.nextTriggerAt = now;
          st.dirty.peers.add(from.peer.id);
        }
        if (b.wgEndpoint) learnSelfEndpoint(st, b.wgEndpoint, fx);
      } else if (b.wgEndpoint && st.peers.get(ev.from)?.peer.role === "hub") {
        // About a third peer: only a hub's word counts (it relays everyone's WireGuard
        // traffic); an ordinary member could otherwise point us at a black hole.
        const ps = st.peers.get(b.about);
        if (ps && learnReported(ps, formatEndpoint(b.wgEndpoint), now)) st.dirty.peers.add(ps.peer.id);
      }
      break;
    }
    case "cc.ltgc.scope:kex": {
      const ps = onKexMessage(st, ev, now, fx);
      if (ps) st.dirty.peers.add(ps.peer.id);
      break;
    }
    default: {
      const never: never = ev;
      throw new Error(`unknown event ${JSON.stringify(never)}`);
    }
  }
}

/**
 * A full peer list. newer: peers an event told of after the list was asked
 * for; the list may have been read before that event (an overloaded
 * registry answers a list seconds late), so the event's word stands for
 * them: not updated, not dropped (a join), not brought back (a leave).
 * Events still to come on the stream are newer than any list.
 */
export function onResync(st: EngineState, peers: Peer[], now: number, newer: ReadonlySet<string>): void {
  const ids = new Set(peers.map((p) => p.id));
  for (const id of [...st.peers.keys()]) if (!ids.has(id) && !newer.has(id)) removePeer(st, id);
  for (const p of peers) if (!newer.has(p.id)) addOrUpdatePeer(st, p, now, false);
}

/** The peer a membership event is about (what onResync's `newer` holds); undefined for other events. */
export function memberOf(ev: Event): string | undefined {
  switch (ev.type) {
    case "cc.ltgc.scope:peerJoin":
    case "cc.ltgc.scope:peerUpdate":
      return ev.body.id;
    case "cc.ltgc.scope:peerLeave":
      return ev.body.peerId;
    default:
      return undefined;
  }
}
