/**
 * The join state machine as a reducer: step(state, input, now) → {state, effects}.
 *
 * Every input is handled in two parts: the input's own bookkeeping (a switch
 * over input.type), then one reconcile() that works out, from the facts
 * now known, what each peer's path is and which effects follow — like
 * tailscale's nextStateLocked, so no handler assigns a path by itself.
 *
 * The state is used linearly: step() updates it in place and returns it; a
 * caller never keeps an older value. Everything is deterministic given the
 * inputs, the times and cfg.nonceSalt.
 */
import { parseEndpoint, familyOf, formatEndpoint } from "../ip.js";
import { composeCandidates, natInfoOf, type NetcheckReport } from "../netcheck.js";
import { acceptFresh, decodeProbe, encodeProbe, probeSender } from "../probe/codec.js";
import type { PeerStats } from "../backend.js";
import type { Candidate, Endpoint, Event, JoinResponse, Peer } from "../protocol.js";
import { log, pong } from "./probing.js";
import { reconcile } from "./reconcile.js";
import { isDirect, newPeerState, restartAttempt } from "./peer.js";
import type { EngineConfig, EngineEffect, EngineInput, EngineState, PeerState, StepResult } from "./types.js";

const DEFAULT_PROBE_WINDOW_MS = 30_000;

export function createEngineState(
  cfg: EngineConfig,
  addresses: string[],
  netcheck: NetcheckReport | undefined,
): EngineState {
  return {
    cfg,
    self: undefined,
    network: undefined,
    joinedAt: 0,
    peerConnSent: false,
    addresses: [...addresses],
    netcheck,
    reportedSelf: [],
    peers: new Map(),
    pingsOut: new Map(),
    seenNonces: new Map(),
    nonceCounter: 0,
    lastApplied: undefined,
    timerAt: undefined,
  };
}

/** The candidates this host publishes, from its addresses, netcheck and reports. */
export function selfCandidates(st: EngineState): Candidate[] {
  return composeCandidates({
    probePort: st.cfg.probePort,
    localAddresses: st.addresses,
    netcheck: st.netcheck,
    reported: st.reportedSelf,
  });
}

export function step(st: EngineState, input: EngineInput, now: number): StepResult {
  const fx: EngineEffect[] = [];
  switch (input.type) {
    case "joined":
      onJoined(st, input.response, input.existing, now);
      break;
    case "event":
      if (st.self) onEvent(st, input.event, now, fx);
      break;
    case "resync":
      if (st.self) onResync(st, input.peers, now);
      break;
    case "probeReceived":
      if (st.self) onProbe(st, input.from, input.bytes, now, fx);
      break;
    case "stats":
      for (const s of input.stats) {
        const ps = [...st.peers.values()].find((p) => p.peer.wgPublicKey === s.publicKey);
        if (!ps) continue;
        ps.statsEndpoint = s.endpoint;
        ps.lastHandshakeMs = s.lastHandshakeMs;
      }
      break;
    case "timer":
      st.timerAt = undefined;
      break;
    case "netcheck":
      st.netcheck = mergeNetcheck(st.netcheck, input.report);
      migrateIfChanged(st, now, fx);
      break;
    case "addressesChanged":
      // With the netcheck made after the change, one migration covers both
      // (two would mean two updateSelf and two restarts toward every peer).
      if (input.netcheck) st.netcheck = mergeNetcheck(st.netcheck, input.netcheck);
      st.addresses = [...input.addresses];
      migrateIfChanged(st, now, fx);
      break;
    default: {
      const never: never = input;
      throw new Error(`unknown engine input ${JSON.stringify(never)}`);
    }
  }
  if (st.self) reconcile(st, now, fx);
  return { state: st, effects: fx };
}

function onJoined(st: EngineState, r: JoinResponse, existing: PeerStats[], now: number): void {
  st.self = r.self;
  st.network = r.network;
  st.joinedAt = now;
  st.peerConnSent = false;
  st.reportedSelf = r.self.candidates.filter((c) => c.kind === "reported");
  for (const peer of r.peers) {
    if (peer.id === r.self.id) continue;
    const ps = st.peers.get(peer.id) ?? newPeerState(st, peer, now);
    ps.peer = peer;
    const live = existing.find((s) => s.publicKey === peer.wgPublicKey);
    if (live) {
      // A tunnel that survived a daemon restart: adopt it as it is, so the
      // first apply changes nothing (never remove and re-add a working peer).
      ps.statsEndpoint = live.endpoint;
      ps.endpoint = ps.roamed = live.endpoint;
      ps.lastHandshakeMs = live.lastHandshakeMs;
      ps.since = 0;
      ps.inBackend = true;
    }
    st.peers.set(peer.id, ps);
  }
}

function addOrUpdatePeer(st: EngineState, peer: Peer, now: number, joined: boolean): void {
  if (peer.id === st.self?.id) {
    st.self = peer;
    return;
  }
  const ps = st.peers.get(peer.id);
  if (!ps) {
    const fresh = newPeerState(st, peer, now);
    fresh.announceApplied = joined && st.cfg.profile.confirmApplied;
    st.peers.set(peer.id, fresh);
    return;
  }
  const significant = (p: Peer): string =>
    JSON.stringify([
      p.listenPort,
      p.probePort,
      p.wgPublicKey,
      p.candidates.filter((c) => c.kind !== "reported"),
    ]);
  const moved = significant(ps.peer) !== significant(peer);
  // A peer that only gained an address (a new link on its host) keeps a
  // working session: restarting would re-create it in WireGuard mid-flow.
  const own = (p: Peer): Candidate[] => p.candidates.filter((c) => c.kind !== "reported");
  const onlyGained =
    significant({ ...ps.peer, candidates: [] }) === significant({ ...peer, candidates: [] }) &&
    own(ps.peer).every((c) => own(peer).some((n) => n.address === c.address && n.port === c.port));
  ps.peer = peer;
  if ((moved && !(onlyGained && isDirect(ps, now))) || joined) {
    // The peer changed its candidates (or re-joined): start over. Its last
    // session's endpoint stays first choice only while its address is still
    // one of the peer's (a republish); after a real move it is dead.
    restartAttempt(st, ps, now);
    const roamedAddress = ps.roamed === undefined ? undefined : parseEndpoint(ps.roamed)?.address;
    if (!peer.candidates.some((c) => c.address === roamedAddress)) ps.roamed = undefined;
    ps.endpoint = undefined;
    ps.reported = [];
    ps.announceApplied = joined && st.cfg.profile.confirmApplied;
  }
}

function onEvent(st: EngineState, ev: Event, now: number, fx: EngineEffect[]): void {
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
      else if (st.peers.delete(ev.body.peerId)) fx.push(log("info", "peer left", { peer: ev.body.peerId }));
      break;
    case "cc.ltgc.scope:peerConn": {
      // The seed's step 6: peers that did not see the newcomer connect back now.
      const ps = st.peers.get(ev.body.peerId);
      if (ps && ps.path !== "direct") {
        ps.nextTriggerAt = now;
        ps.nextProbeAt = now;
      }
      break;
    }
    case "cc.ltgc.scope:peerReport": {
      const b = ev.body;
      if (b.about === selfId) {
        const from = st.peers.get(ev.from);
        if (b.applied && from && from.path !== "direct") from.nextTriggerAt = now;
        if (b.wgEndpoint) learnSelfEndpoint(st, b.wgEndpoint, fx);
      } else if (b.wgEndpoint) {
        const ps = st.peers.get(b.about);
        const c: Candidate = { ...b.wgEndpoint, kind: "reported" };
        if (ps && !ps.reported.some((x) => x.address === c.address && x.port === c.port))
          ps.reported = [c, ...ps.reported].slice(0, 4);
      }
      break;
    }
    case "cc.ltgc.scope:kex":
      break;
    default: {
      const never: never = ev;
      throw new Error(`unknown event ${JSON.stringify(never)}`);
    }
  }
}

function onResync(st: EngineState, peers: Peer[], now: number): void {
  const ids = new Set(peers.map((p) => p.id));
  for (const id of [...st.peers.keys()]) if (!ids.has(id)) st.peers.delete(id);
  for (const p of peers) addOrUpdatePeer(st, p, now, false);
}

/**
 * A peer saw our WireGuard traffic come from e. Worth publishing only if no
 * candidate implies it already: that is the port-shifting NAT case, where
 * nobody else can know the WireGuard port's mapping (DESIGN §4).
 */
function learnSelfEndpoint(st: EngineState, e: Endpoint, fx: EngineEffect[]): void {
  const self = st.self;
  if (!self || familyOf(e.address) !== "ipv4" || st.addresses.includes(e.address)) return;
  // Behind a symmetric NAT each peer sees its own mapping: useless to anyone
  // else. While the mapping behaviour is unknown (no netcheck answer yet) it
  // may be symmetric: publish only what is known to be valid for everyone.
  if (self.nat.mapping !== "endpoint-independent") return;
  // A port-shifting NAT keeps the address and moves the port: a report with
  // another address is stale (sent before we moved) or a LAN view.
  const reflexive = st.netcheck?.ipv4?.public.address;
  if (reflexive !== undefined && reflexive !== e.address) return;
  const implied = self.candidates.some(
    (c) =>
      c.address === e.address &&
      (c.kind === "reported" || c.kind === "configured" ? c.port : self.listenPort) === e.port,
  );
  if (implied) return;
  st.reportedSelf = [{ ...e, kind: "reported" as const }, ...st.reportedSelf].slice(0, 2);
  self.candidates = selfCandidates(st);
  fx.push(
    log("info", "peers see this host's WireGuard port at a shifted mapping", { endpoint: formatEndpoint(e) }),
  );
  fx.push({ type: "updateSelf", update: { candidates: self.candidates } });
}

function mergeNetcheck(old: NetcheckReport | undefined, r: NetcheckReport): NetcheckReport {
  // One lost reflector answer must not look like a migration.
  if (!old) return r;
  return { ...r, ipv4: r.ipv4 ?? old.ipv4, mapping: r.mapping === "unknown" ? old.mapping : r.mapping };
}

function migrateIfChanged(st: EngineState, now: number, fx: EngineEffect[]): void {
  const self = st.self;
  if (!self) return;
  const fresh = selfCandidates(st).filter((c) => c.kind !== "reported");
  const nat = natInfoOf(st.netcheck);
  const old = self.candidates.filter((c) => c.kind !== "reported");
  const natChanged = JSON.stringify(nat) !== JSON.stringify(self.nat);
  if (JSON.stringify(fresh) === JSON.stringify(old) && !natChanged) return;
  // Only a lost address or a new NAT mapping can break a working path. A
  // link that merely appears (docker0, a VPN, a veth) must not reset live
  // sessions: re-attempting a direct peer re-creates it in WireGuard and
  // drops packets for a round trip.
  const lost =
    natChanged || old.some((c) => !fresh.some((f) => f.address === c.address && f.port === c.port));
  if (lost) st.reportedSelf = []; // our WireGuard mapping may have changed: reports about it are stale
  self.candidates = lost ? fresh : [...fresh, ...self.candidates.filter((c) => c.kind === "reported")];
  self.nat = nat;
  fx.push(
    log("info", "addresses changed: re-announcing and re-probing", { candidates: fresh.map(formatEndpoint) }),
  );
  fx.push({ type: "updateSelf", update: { candidates: self.candidates, nat } });
  for (const ps of st.peers.values()) if (lost || !isDirect(ps, now)) restartAttempt(st, ps, now);
}

/** from is one of the peer's published addresses, or one WireGuard saw it use. */
function knownAddress(ps: PeerState, address: string): boolean {
  const seen = [ps.statsEndpoint, ps.roamed].map((e) => (e ? parseEndpoint(e)?.address : undefined));
  return (
    ps.peer.candidates.some((c) => c.address === address) ||
    ps.reported.some((c) => c.address === address) ||
    seen.includes(address)
  );
}

function onProbe(st: EngineState, from: Endpoint, bytes: Uint8Array, now: number, fx: EngineEffect[]): void {
  const sender = probeSender(bytes);
  const ps = sender === undefined ? undefined : st.peers.get(sender);
  if (!ps?.key) return;
  const msg = decodeProbe(bytes, ps.key);
  // Forged, stale or replayed: dropped without a trace in the state.
  if (!msg || !acceptFresh(st.seenNonces, msg, now, st.cfg.probeWindowMs ?? DEFAULT_PROBE_WINDOW_MS)) return;
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
      return;
    }
    fx.push({ type: "sendProbe", to: from, bytes: encodeProbe(pong(st, now, msg.nonce, from), ps.key) });
    ps.probeFrom = from;
    return;
  }
  const out = st.pingsOut.get(msg.echoNonce);
  if (!out || out.peerId !== ps.peer.id) return;
  st.pingsOut.delete(msg.echoNonce);
  const first = ps.answers.size === 0;
  ps.answers.set(out.to, { rttMs: Math.max(0, now - out.sentAt), at: now });
  if (familyOf(parseEndpoint(out.to)?.address ?? "") === "ipv4") ps.firstV4AnswerAt ??= now;
  // First sign of life: WireGuard may have dropped our handshake before the
  // peer knew us; try again now rather than in 5 s.
  if (first && ps.path !== "direct") ps.nextTriggerAt = now;
}
