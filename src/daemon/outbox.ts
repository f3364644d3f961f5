/**
 * Relayed messages on their way to the registry. The engine posts a report
 * once and believes it arrived; when 40 hosts join at once the registry can
 * answer late or not at all, and a lost peerReport is the one way a host
 * behind a port-shifting NAT learns its WireGuard mapping (DESIGN §4). So:
 *
 * - a message the registry did not take (no answer, reset, timeout, 5xx, 429) is
 *   sent again after a bounded backoff on the injected clock; an answer that
 *   refuses it (4xx: the recipient left, bad input) is final;
 * - messages about the same thing coalesce: a newer peerReport about a peer
 *   replaces one still waiting (in the queue or for a retry), so a burst
 *   costs the registry one request per subject, not one per change;
 * - at most MAX_IN_FLIGHT requests at once, so a slow registry sees a steady
 *   trickle from each host instead of a pile of requests that time out
 *   together and come back together.
 */
import type { Clock, Random, TimerId } from "../core/clock.js";
import { ScopeError } from "../core/errors.js";
import type { PostMessage } from "../core/protocol.js";

export const MAX_IN_FLIGHT = 4;
export const RETRY_MIN_MS = 1_000;
export const RETRY_MAX_MS = 16_000;
/** Attempts per message before it is given up (about a minute of backoff). */
export const MAX_ATTEMPTS = 7;

/**
 * The wait before retry number attempt + 1: doubling from RETRY_MIN_MS up to
 * RETRY_MAX_MS, times a jitter in [0.5, 1) so that hosts refused together
 * (a registry restart, an overload) do not all come back together.
 */
export const backoffMs = (attempt: number, random: Random): number =>
  Math.round(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt) * (0.5 + random() / 2));

export interface OutboxDeps {
  clock: Clock;
  /** Retry jitter (default: none, for tests that count exact delays). */
  random?: Random;
  post: (m: PostMessage) => Promise<unknown>;
  /** A message given up for good (refused, or out of attempts). */
  onDrop: (m: PostMessage, err: Error, attempts: number) => void;
}

interface Entry {
  key: string;
  message: PostMessage;
  attempts: number;
  /** A retry timer while waiting for one. */
  timer: TimerId | undefined;
}

let unique = 0;

/** Messages with one key coalesce: the newest one is the one sent. */
export function coalesceKey(m: PostMessage): string {
  switch (m.type) {
    case "cc.ltgc.scope:peerReport":
      return `report ${m.to ?? ""} ${m.body.about} ${m.body.applied ? "applied" : "seen"}`;
    case "cc.ltgc.scope:peerConn":
      return `conn ${m.body.peerId}`;
    default:
      return `once ${++unique}`;
  }
}

/**
 * True for a failure the registry may not have seen at all (or could not
 * serve), or refused only for now (429, a quota): worth sending again.
 */
export const isRetryable = (e: unknown): boolean =>
  e instanceof ScopeError && (e.code === "unavailable" || e.code === "rate_limited");

export class Outbox {
  /** Waiting to be sent (queued or for a retry), by key. */
  private readonly waiting = new Map<string, Entry>();
  /** Keys ready to go now, in order. */
  private readonly ready: string[] = [];
  /** Keys with a request under way. */
  private readonly inFlight = new Set<string>();
  private closed = false;

  constructor(private readonly d: OutboxDeps) {}

  /** Messages not yet accepted by the registry (queued, waiting for a retry, or under way). */
  get pending(): number {
    return this.waiting.size + this.inFlight.size;
  }

  send(message: PostMessage): void {
    if (this.closed) return;
    const key = coalesceKey(message);
    const old = this.waiting.get(key);
    if (old) {
      // Newer news replaces the old: it goes in the old one's place, with a fresh budget.
      old.message = message;
      old.attempts = 0;
      if (old.timer !== undefined) {
        this.d.clock.clearTimer(old.timer);
        old.timer = undefined;
        this.ready.push(key);
      }
    } else {
      this.waiting.set(key, { key, message, attempts: 0, timer: undefined });
      this.ready.push(key);
    }
    this.pump();
  }

  /** Drops everything and cancels every retry timer (the daemon is stopping). */
  close(): void {
    this.closed = true;
    for (const e of this.waiting.values()) if (e.timer !== undefined) this.d.clock.clearTimer(e.timer);
    this.waiting.clear();
    this.ready.length = 0;
  }

  private pump(): void {
    while (!this.closed && this.inFlight.size < MAX_IN_FLIGHT) {
      // A key whose previous message is still under way waits for it (order per subject).
      const i = this.ready.findIndex((k) => !this.inFlight.has(k));
      if (i < 0) return;
      const key = this.ready.splice(i, 1)[0] as string;
      const e = this.waiting.get(key);
      if (!e) continue;
      this.waiting.delete(key);
      this.inFlight.add(key);
      e.attempts++;
      this.d.post(e.message).then(
        () => this.settle(key),
        (err: Error) => {
          this.settle(key);
          this.failed(e, err);
        },
      );
    }
  }

  private settle(key: string): void {
    this.inFlight.delete(key);
    this.pump();
  }

  private failed(e: Entry, err: Error): void {
    if (this.closed) return;
    // Something newer about the same subject is waiting already: it supersedes this one.
    if (this.waiting.has(e.key)) return;
    if (!isRetryable(err) || e.attempts >= MAX_ATTEMPTS) {
      this.d.onDrop(e.message, err, e.attempts);
      return;
    }
    const delay = backoffMs(e.attempts - 1, this.d.random ?? (() => 1));
    this.waiting.set(e.key, e);
    e.timer = this.d.clock.setTimer(delay, () => {
      e.timer = undefined;
      if (this.waiting.get(e.key) !== e) return;
      this.ready.push(e.key);
      this.pump();
    });
  }
}
