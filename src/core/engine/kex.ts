/**
 * The kex slice: pre-shared key epochs per peer (DESIGN §6, docs/security.md).
 * A pure reducer over signed `cc.ltgc.scope:kex` messages and the time; the
 * crypto is src/crypto/kex.ts, the wire format kex-wire.ts.
 *
 * Per pair, the peer with the higher WireGuard public key decapsulates (D),
 * the other encapsulates (E). One rotation, epoch e:
 *
 *   D  offer(e)   → E   ephemeral ML-KEM-768 + X448 public keys
 *   E  answer(e)  → D   E derives PSK(e) and installs it *before* answering
 *   D  confirm(e) → E   D derives, checks, installs, proves it with a tag
 *
 * Why nothing is lost: WireGuard uses the PSK only in a handshake and keeps
 * the current session keys after a PSK change, so installing a PSK never
 * touches traffic. The new PSK takes effect at WireGuard's next handshake,
 * which it starts by itself every 2 min on a live tunnel (the keepalive
 * keeps it live); Scope does not force one, because the only way to force
 * a handshake (re-creating the peer) drops the packets that are in flight
 * on the old session. E installs before D, and D only once E has it, so the
 * next handshake finds both sides agreeing.
 *
 * What if not: a side keeps the PSK it had before (prev) and goes back to it
 * - E, when no confirm comes within KEX_SWITCH_MS of its answer (D may not
 *   have the new PSK);
 * - either side, when no handshake follows the install by the time
 *   WireGuard must have re-keyed (last handshake + rekey + keepalive) plus
 *   KEX_SWITCH_MS: the handshake failed, so the PSKs differ. Both sides see
 *   the same missing handshake and go back to the PSK they last shared, and
 *   WireGuard's retry 5 s later succeeds, long before the session expires
 *   (180 s).
 * A peer that does not answer (stopped, gone) leaves D with its PSK as it
 * was; D tries again at the next interval.
 *
 * Ephemerals are shared within a round (KEX_SHARE_MS): D's offers to its
 * peers carry one ML-KEM + X448 key pair, E's answers one X448 key pair,
 * never twice for the same peer. Per pair the exchange is still fresh (E's
 * encapsulation is; the transcript binds both WireGuard keys), and ML-KEM is
 * built to be encapsulated to many times (IND-CCA2). It halves the busiest
 * host's work (docs/security.md, "one round, one key pair").
 *
 * Epochs are D's clock in seconds (bumped past the last one), so they keep
 * rising across a restart of either side; E refuses an offer whose epoch is
 * not newer than the last it accepted or older than KEX_MAX_AGE_MS. E asks
 * for a rotation (request) when it has no PSK: after its own restart D may
 * still hold one.
 */
import type { RandomBytes } from "../../crypto/kex.js";
import {
  answerOffer,
  finishOffer,
  makeOffer,
  sameBytes,
  x448Pair,
  X448_BYTES,
  type OfferSecrets,
  type PairKeys,
  type X448Pair,
} from "../../crypto/kex.js";
import type { Event, PostMessage } from "../protocol.js";
import { messageType } from "../protocol.js";
import { PERSISTENT_KEEPALIVE_S } from "../timers.js";
import { openKex, sealKex, type KexRoute, type KexStage } from "./kex-wire.js";
import { log } from "./log.js";
import type { EngineEffect, EngineState, PeerState } from "./types.js";

/** What the engine needs for rotation; absent in EngineConfig: `[psk] mode = off`. */
export interface KexConfig {
  intervalMs: number;
  random: RandomBytes;
}

/** The 15 s: how long a switch may go unproven before it is undone. */
export const KEX_SWITCH_MS = 15_000;
/** WireGuard's REKEY_AFTER_TIME: the session initiator re-keys a live tunnel after this. */
export const WG_REKEY_AFTER_MS = 120_000;
/** Offers older than this (by their epoch) are stale: their sender has moved on. */
export const KEX_MAX_AGE_MS = 60_000;
/**
 * How long one ephemeral key pair serves a round's offers (D) or answers
 * (E): a round's offers go out in one step and their answers come within
 * seconds; longer would keep a secret alive for nothing.
 */
export const KEX_SHARE_MS = 10_000;

/** One ephemeral key pair of a round and the peers it has served (each at most once). Secret. */
interface Shared<T> {
  keys: T;
  madeAt: number;
  usedBy: Set<string>;
}

/** The engine's round ephemerals (EngineState.kexShared). Secret. */
export interface KexShared {
  offer: Shared<OfferSecrets> | undefined;
  answer: Shared<X448Pair> | undefined;
}

export const newKexShared = (): KexShared => ({ offer: undefined, answer: undefined });

const fresh = (slot: Shared<unknown> | undefined, now: number): boolean =>
  slot !== undefined && now >= slot.madeAt && now < slot.madeAt + KEX_SHARE_MS;

/** The round's key pair for this peer: the current one unless stale or already used with it; else a new one. */
function sharedKeys<T>(
  slot: Shared<T> | undefined,
  peer: string,
  now: number,
  make: () => T,
): { slot: Shared<T>; keys: T } {
  const s =
    slot && fresh(slot, now) && !slot.usedBy.has(peer)
      ? slot
      : { keys: make(), madeAt: now, usedBy: new Set<string>() };
  s.usedBy.add(peer);
  return { slot: s, keys: s.keys };
}

/** Forgets a round's key pairs once their time is up (at the next kex work or message). */
function dropStale(sh: KexShared, now: number): void {
  if (!fresh(sh.offer, now)) sh.offer = undefined;
  if (!fresh(sh.answer, now)) sh.answer = undefined;
}

type Role = "decapsulator" | "encapsulator";

interface Installed {
  psk: string | undefined;
  epoch: number;
}

export interface KexState {
  role: Role | undefined;
  /** The PSK configured now, its epoch (0: none) and since when. */
  psk: string | undefined;
  epoch: number;
  installedAt: number;
  /** What to go back to when the current PSK is not proven (kept after it is, too). */
  prev: Installed | undefined;
  /** Proven by a handshake after installedAt (or nothing to prove). */
  proven: boolean;
  /** D: the outstanding offer. Secret. */
  offer: { epoch: number; nonce: Uint8Array; secrets: OfferSecrets; sentAt: number } | undefined;
  /** E: answered, waiting for D's confirm; tag is what D must send. */
  answered: { epoch: number; nonce: Uint8Array; tag: Uint8Array; until: number } | undefined;
  /** Highest epoch accepted from the peer (E: offers) or sent (D). */
  lastEpoch: number;
  /** D: next offer; E: a request is due (after a restart), at this time. */
  nextAt: number | undefined;
  rotations: number;
}

const compareKeys = (a: string, b: string): number =>
  Buffer.compare(Buffer.from(a, "base64"), Buffer.from(b, "base64"));

export function newKexState(selfWgKey: string | undefined, peerWgKey: string, now: number): KexState {
  const role: Role | undefined =
    selfWgKey === undefined
      ? undefined
      : compareKeys(selfWgKey, peerWgKey) > 0
        ? "decapsulator"
        : "encapsulator";
  return {
    role,
    psk: undefined,
    epoch: 0,
    installedAt: now,
    prev: undefined,
    proven: true,
    offer: undefined,
    answered: undefined,
    lastEpoch: 0,
    // D starts at once; E asks once (D may hold a PSK from before our restart).
    nextAt: now,
    rotations: 0,
  };
}

/** The PSK to configure for a peer now; undefined: none. */
export const presharedKeyOf = (kex: KexState): string | undefined => kex.psk;

/** When WireGuard must have re-keyed under the current PSK, plus the grace: after this, unproven means failed. */
function revertAt(kex: KexState, lastHandshakeMs: number | undefined): number | undefined {
  // Never a handshake: no tunnel to keep, and nothing shows whether the keys agree.
  if (kex.proven || kex.prev === undefined || lastHandshakeMs === undefined) return undefined;
  const rekey = lastHandshakeMs + WG_REKEY_AFTER_MS + PERSISTENT_KEEPALIVE_S * 1000;
  return Math.max(kex.installedAt, rekey) + KEX_SWITCH_MS;
}

/** The kex slice's next deadline for a peer: an offer, a request, a confirm timeout, a revert. */
export function kexDeadline(ps: PeerState, enabled: boolean): number | undefined {
  if (!enabled) return undefined;
  const k = ps.kex;
  const out = [k.nextAt, k.answered?.until, revertAt(k, ps.paths.wg.lastHandshakeMs)];
  let at: number | undefined;
  for (const d of out) if (d !== undefined && (at === undefined || d < at)) at = d;
  return at;
}

function install(ps: PeerState, psk: string, epoch: number, now: number, keepPrev: boolean): void {
  const k = ps.kex;
  if (!keepPrev) k.prev = { psk: k.psk, epoch: k.epoch };
  k.psk = psk;
  k.epoch = epoch;
  k.installedAt = now;
  k.proven = false;
  k.rotations++;
}

function revert(ps: PeerState, now: number, why: string, fx: EngineEffect[]): void {
  const k = ps.kex;
  const back = k.prev ?? { psk: undefined, epoch: 0 };
  fx.push(
    log("warn", "psk: back to the previous key", { peer: ps.peer.name, epoch: k.epoch, to: back.epoch, why }),
  );
  k.psk = back.psk;
  k.epoch = back.epoch;
  k.installedAt = now;
  k.proven = true;
  k.answered = undefined;
}

const KEX = messageType("kex") as "cc.ltgc.scope:kex";

function send(
  st: EngineState,
  ps: PeerState,
  epoch: number,
  stage: KexStage,
  parts: Uint8Array[],
  fx: EngineEffect[],
): void {
  const self = st.self;
  if (!self || !st.network) return;
  const route: KexRoute = { network: st.network.name, from: self.id, to: ps.peer.id };
  const body = sealKex(st.cfg.identity, route, epoch, stage, parts);
  const message: PostMessage = { type: KEX, to: ps.peer.id, body };
  fx.push({ type: "postMessage", message });
}

const pairKeys = (st: EngineState, ps: PeerState): PairKeys => {
  const mine = Buffer.from(st.self?.wgPublicKey ?? "", "base64");
  const theirs = Buffer.from(ps.peer.wgPublicKey, "base64");
  return ps.kex.role === "decapsulator"
    ? { decapsulatorWg: mine, encapsulatorWg: theirs }
    : { decapsulatorWg: theirs, encapsulatorWg: mine };
};

/** D: a fresh offer (replacing one still out: its answer, if any, no longer counts). */
function offer(st: EngineState, cfg: KexConfig, ps: PeerState, now: number, fx: EngineEffect[]): void {
  const k = ps.kex;
  const epoch = Math.max(k.lastEpoch + 1, Math.floor(now / 1000));
  const nonce = cfg.random(16);
  const { slot, keys: secrets } = sharedKeys(st.kexShared.offer, ps.peer.id, now, () =>
    makeOffer(cfg.random),
  );
  st.kexShared.offer = slot;
  k.offer = { epoch, nonce, secrets, sentAt: now };
  k.lastEpoch = epoch;
  k.nextAt = now + cfg.intervalMs;
  send(st, ps, epoch, "offer", [nonce, secrets.x448Public, secrets.mlkemPublic], fx);
}

/**
 * Time-driven work for one peer (from reconcile, before its entry is
 * built): offers and requests that are due, a confirm that did not come, a
 * switch that no handshake proved.
 */
export function kexWork(st: EngineState, ps: PeerState, now: number, fx: EngineEffect[]): void {
  const cfg = st.cfg.kex;
  const k = ps.kex;
  if (!cfg || !k.role) return;
  dropStale(st.kexShared, now);
  const lh = ps.paths.wg.lastHandshakeMs;
  // A handshake at or after the install (wg(8) shows whole seconds) proves the current PSK.
  if (!k.proven && lh !== undefined && lh + 1000 > k.installedAt) k.proven = true;
  if (k.answered && now >= k.answered.until) revert(ps, now, "no confirm from the peer", fx);
  const back = revertAt(k, lh);
  if (back !== undefined && now >= back) revert(ps, now, "no handshake under the new key", fx);
  if (k.nextAt !== undefined && now >= k.nextAt) {
    if (k.role === "decapsulator") offer(st, cfg, ps, now, fx);
    else {
      // Asked again while we have no PSK (the request or D's offer was lost, D was away).
      k.nextAt = k.psk === undefined ? now + cfg.intervalMs : undefined;
      send(st, ps, Math.floor(now / 1000), "request", [cfg.random(16)], fx);
    }
  }
}

/**
 * How long E waits, on `scope psk rotate`, for D's offer before asking for
 * one: rotated on every host at once, D offers by itself, and E's request
 * only costs a message, or a second exchange when it crosses the offer into
 * a later second (the 20-peer lab rotation: 998 messages against 570).
 */
export const KEX_REQUEST_WAIT_MS = 2_000;

/** `scope psk rotate [PEER]`: D offers now; E asks D to, unless D's offer comes first (E without a PSK asks at once). */
export function kexRotateNow(ps: PeerState, now: number): void {
  const k = ps.kex;
  k.nextAt = k.role === "encapsulator" && k.psk !== undefined ? now + KEX_REQUEST_WAIT_MS : now;
}

/** A kex message from the registry; true when it changed this peer's state (the caller reconciles it). */
export function onKexMessage(
  st: EngineState,
  ev: Extract<Event, { type: "cc.ltgc.scope:kex" }>,
  now: number,
  fx: EngineEffect[],
): PeerState | undefined {
  const cfg = st.cfg.kex;
  const ps = st.peers.get(ev.from);
  if (!cfg || !ps || !ps.kex.role || !st.self || !st.network) return undefined;
  const route: KexRoute = { network: st.network.name, from: ps.peer.id, to: st.self.id };
  const m = openKex(ps.peer.identityKey, route, ev.body);
  const refuse = (why: string): undefined => {
    fx.push(log("debug", "psk: kex message refused", { peer: ps.peer.name, stage: ev.body.stage, why }));
    return undefined;
  };
  if (!m) return refuse("bad signature or payload");
  dropStale(st.kexShared, now);
  const k = ps.kex;
  const epoch = ev.body.epoch;
  const d = k.role === "decapsulator";
  try {
    switch (ev.body.stage) {
      case "request":
        if (!d) return refuse("a request goes to the decapsulating side");
        // Its epoch is E's clock when it asked: an offer of ours since then
        // (the one it crossed at a join) answers it already, and a replay too.
        if (epoch <= k.lastEpoch) return undefined;
        k.nextAt = now;
        return ps;
      case "offer": {
        if (d) return refuse("an offer comes from the decapsulating side");
        if (epoch <= k.lastEpoch) return refuse("old epoch or replay");
        if (epoch * 1000 < now - KEX_MAX_AGE_MS) return refuse("stale offer");
        const { slot, keys: own } = sharedKeys(st.kexShared.answer, ps.peer.id, now, () =>
          x448Pair(cfg.random(X448_BYTES)),
        );
        const a = answerOffer(cfg.random, pairKeys(st, ps), epoch, m.first, m.second, own);
        st.kexShared.answer = slot;
        k.lastEpoch = epoch;
        k.nextAt = undefined;
        // An answer still unconfirmed keeps the older prev: that is the one D may still have.
        install(ps, Buffer.from(a.derived.psk).toString("base64"), epoch, now, k.answered !== undefined);
        k.answered = { epoch, nonce: m.nonce, tag: a.derived.confirm, until: now + KEX_SWITCH_MS };
        send(st, ps, epoch, "answer", [m.nonce, a.x448Public, a.ciphertext], fx);
        return ps;
      }
      case "answer": {
        const o = k.offer;
        if (!d) return refuse("an answer goes to the decapsulating side");
        if (!o || o.epoch !== epoch || !sameBytes(o.nonce, m.nonce))
          return refuse("no such offer (old or replayed)");
        const derived = finishOffer(o.secrets, pairKeys(st, ps), epoch, m.first, m.second);
        k.offer = undefined;
        install(ps, Buffer.from(derived.psk).toString("base64"), epoch, now, false);
        send(st, ps, epoch, "confirm", [m.nonce, derived.confirm], fx);
        fx.push(log("debug", "psk: rotated", { peer: ps.peer.name, epoch }));
        return ps;
      }
      case "confirm": {
        const a = k.answered;
        if (d) return refuse("a confirm goes to the encapsulating side");
        if (!a || a.epoch !== epoch || !sameBytes(a.nonce, m.nonce))
          return refuse("no such answer (old or replayed)");
        if (!sameBytes(a.tag, m.first)) {
          revert(ps, now, "the peer derived another key", fx);
          return ps;
        }
        k.answered = undefined;
        fx.push(log("debug", "psk: rotated", { peer: ps.peer.name, epoch }));
        return ps;
      }
    }
  } catch (err) {
    // Malformed keys inside a correctly signed message: the peer's bug, not an attack; nothing changes.
    return refuse(`malformed: ${(err as Error).message}`);
  }
}

/** `scope status`: the PSK epoch and since when; null without a PSK. */
export function kexStatus(kex: KexState): { epoch: number; since: number; rotations: number } | null {
  return kex.psk === undefined
    ? null
    : { epoch: kex.epoch, since: kex.installedAt, rotations: kex.rotations };
}
