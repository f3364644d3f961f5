/**
 * KEX messages through the tunnel, the registry as the fallback
 * (docs/security.md, "How KEX messages travel").
 *
 * Relaying a 50-peer mesh's rotation (1225 pairs, three signed messages
 * each, every one a signed POST in and an event out) through one registry
 * thread is what kept it from settling. Once a pair has a live tunnel the
 * registry is not needed: the message goes to the peer's tunnel address at
 * its probe port, inside WireGuard. The message is the same signed
 * `cc.ltgc.scope:kex` body, so the transport adds no trust: the slice
 * checks the signature, route, epoch and nonces as for a relayed one.
 *
 * Datagrams can be lost, so each one is acknowledged (the first 16 bytes of
 * SHA-256 over its signature: only who saw the message inside the tunnel
 * knows them) and goes through the registry when no ack comes within a
 * window that follows the measured round trip. A message that arrives both
 * ways is harmless: the slice refuses the second as a replay.
 *
 * A kex datagram is taken only from the claimed sender's tunnel address
 * (WireGuard authenticates a packet's source address by the peer's key), so
 * nobody outside the tunnel can make us verify signatures for nothing.
 */
import { createHash } from "node:crypto";
import type { Clock, TimerId } from "../core/clock.js";
import { Event, messageType, type Endpoint, type PostMessage } from "../core/protocol.js";

const MSG_MAGIC = Uint8Array.of(0x53, 0x43, 0x4b, 0x4d); // "SCKM"
const ACK_MAGIC = Uint8Array.of(0x53, 0x43, 0x4b, 0x41); // "SCKA"
const ACK_BYTES = 16;
/** Before any round trip is measured: a busy 2-core host can hold a datagram in its queue this long. */
export const WINDOW_INITIAL_MS = 1_000;
/**
 * Never less: a round trip measured on an idle mesh (a few ms) says nothing
 * about a rotation, when every daemon works through 49 exchanges at once and
 * reads its socket late. With 200 ms, 290 of 998 messages of a 20-peer
 * rotation went through the registry as well (bench:psk --lab), each costing
 * a signed POST, the registry and a second verify: a late ack costs less
 * than a needless relay. A datagram really lost waits this long.
 */
export const WINDOW_MIN_MS = 1_000;
export const WINDOW_MAX_MS = 3_000;
/** An ack after its fallback still tells the round trip, for this long after the send. */
const LATE_ACK_MS = 10_000;
/** Window = this many smoothed round trips (as TCP's RTO, loosely: the round trip varies with load). */
const WINDOW_RTTS = 4;

export interface KexDirectDeps {
  clock: Clock;
  /** Sends one datagram from the probe socket. */
  sendDatagram: (to: Endpoint, bytes: Uint8Array) => void;
  /** The fallback: the registry relay (the outbox). */
  viaRegistry: (m: PostMessage) => void;
  /** A kex message that came through the tunnel, as if from the registry. */
  deliver: (e: Event) => void;
  /** The peer's probe socket inside the tunnel when the tunnel is live; undefined: relay. */
  tunnelOf: (peerId: string) => Endpoint | undefined;
  /** The peer's tunnel addresses (any state), to check where a datagram came from. */
  addressesOf: (peerId: string) => string[];
  /** A message went through the registry after all (no ack in time): for the log. */
  onFallback?: (peer: string, windowMs: number) => void;
  /** Our id and network; undefined before the join. */
  self: () => { id: string; network: string } | undefined;
}

interface Pending {
  message: PostMessage;
  peer: string;
  sentAt: number;
  timer: TimerId;
}

const startsWith = (bytes: Uint8Array, magic: Uint8Array): boolean =>
  bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);

const ackOf = (signature: string): string =>
  createHash("sha256").update(signature).digest().subarray(0, ACK_BYTES).toString("hex");

const KEX = messageType("kex") as "cc.ltgc.scope:kex";

export class KexDirect {
  private readonly pending = new Map<string, Pending>();
  /** Sent, relayed after no ack, ack still welcome as a round-trip sample: key → peer, when sent. */
  private readonly late = new Map<string, { peer: string; sentAt: number }>();
  /** Smoothed round trip per peer (ms). */
  private readonly rtt = new Map<string, number>();
  readonly counts = { direct: 0, acked: 0, fallback: 0, relayed: 0, received: 0 };

  constructor(private readonly d: KexDirectDeps) {}

  /** How long to wait for a peer's ack before the registry takes the message. */
  windowMs(peer: string): number {
    const r = this.rtt.get(peer);
    if (r === undefined) return WINDOW_INITIAL_MS;
    return Math.min(WINDOW_MAX_MS, Math.max(WINDOW_MIN_MS, Math.round(r * WINDOW_RTTS)));
  }

  send(m: PostMessage): void {
    if (m.type !== KEX) return this.d.viaRegistry(m);
    const self = this.d.self();
    const peer = m.to;
    const to = peer === undefined ? undefined : this.d.tunnelOf(peer);
    if (peer === undefined || !to || !self) {
      this.counts.relayed++;
      return this.d.viaRegistry(m);
    }
    const key = ackOf(m.body.signature);
    const wire = JSON.stringify({ network: self.network, from: self.id, to: peer, body: m.body });
    const windowMs = this.windowMs(peer);
    const timer = this.d.clock.setTimer(windowMs, () => {
      const p = this.pending.get(key);
      if (p?.timer !== timer) return;
      this.pending.delete(key);
      this.keepLate(key, p);
      this.counts.fallback++;
      this.d.onFallback?.(peer, windowMs);
      this.d.viaRegistry(m);
    });
    this.pending.set(key, { message: m, peer, sentAt: this.d.clock.now(), timer });
    this.counts.direct++;
    this.d.sendDatagram(to, Buffer.concat([MSG_MAGIC, Buffer.from(wire)]));
  }

  /** A datagram from the probe socket; true when it was ours (a kex message or an ack), handled or dropped. */
  receive(from: Endpoint, bytes: Uint8Array): boolean {
    if (startsWith(bytes, ACK_MAGIC)) {
      this.acked(Buffer.from(bytes.subarray(ACK_MAGIC.length)).toString("hex"));
      return true;
    }
    if (!startsWith(bytes, MSG_MAGIC)) return false;
    const self = this.d.self();
    if (!self) return true;
    let e: Event;
    try {
      const raw = JSON.parse(Buffer.from(bytes.subarray(MSG_MAGIC.length)).toString()) as Record<
        string,
        unknown
      >;
      const parsed = Event.safeParse({ ...raw, id: 0, ts: Math.floor(this.d.clock.now()), type: KEX });
      if (!parsed.success) return true;
      e = parsed.data;
    } catch {
      return true;
    }
    if (e.type !== KEX || e.network !== self.network || e.to !== self.id) return true;
    if (!this.d.addressesOf(e.from).includes(from.address)) return true;
    this.counts.received++;
    // Acked on arrival, before the work: the ack says "no need to relay it", not "it was good".
    const ack = Buffer.from(ackOf(e.body.signature), "hex");
    this.d.sendDatagram(from, Buffer.concat([ACK_MAGIC, ack]));
    this.d.deliver(e);
    return true;
  }

  private acked(key: string): void {
    const p = this.pending.get(key);
    if (!p) {
      // Too late to spare the relay, but the round trip it shows widens the next window.
      const l = this.late.get(key);
      if (l) {
        this.late.delete(key);
        this.sample(l.peer, l.sentAt);
      }
      return;
    }
    this.pending.delete(key);
    this.d.clock.clearTimer(p.timer);
    this.counts.acked++;
    this.sample(p.peer, p.sentAt);
  }

  private sample(peer: string, sentAt: number): void {
    const sample = Math.max(0, this.d.clock.now() - sentAt);
    const old = this.rtt.get(peer);
    this.rtt.set(peer, old === undefined ? sample : old * 0.75 + sample * 0.25);
  }

  /** Remembers a relayed message's send time for its late ack; forgets those older than LATE_ACK_MS. */
  private keepLate(key: string, p: Pending): void {
    const now = this.d.clock.now();
    for (const [k, l] of this.late) if (now - l.sentAt > LATE_ACK_MS) this.late.delete(k);
    this.late.set(key, { peer: p.peer, sentAt: p.sentAt });
  }

  /** The daemon stops: no fallback fires afterwards. */
  close(): void {
    for (const p of this.pending.values()) this.d.clock.clearTimer(p.timer);
    this.pending.clear();
    this.late.clear();
  }
}
