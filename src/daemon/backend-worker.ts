/**
 * Serialises backend calls and coalesces them. Backend operations can be
 * slow (a UAPI round trip, a D-Bus call, a file write plus reload), and the
 * engine may ask faster than they finish; a plain queue then replays stale
 * desired states seconds late and feeds the engine stale stats. So only the
 * newest desired state is kept, triggers are a set, and one stats read
 * serves every request made while it was pending.
 *
 * Order per round: apply, then triggers (WireGuard must know a peer before
 * our handshake makes it answer), then stats.
 *
 * Triggers are spaced from the previous initiation toward the same peer
 * (one sent when an apply added it with a keepalive, or an earlier
 * trigger): WireGuard drops an initiation that arrives within 20 ms of the
 * last one it took from that peer (wireguard-go HandshakeInitationRate; the
 * kernel likewise), and a trigger re-creates the peer here, so the answer to
 * the first one is lost as well: neither handshake completes and WireGuard
 * tries again only after 5 s.
 */
import type { Backend, DesiredState, PeerStats } from "../core/backend.js";
import { canTriggerHandshake } from "../core/backend.js";
import { sleep, systemClock, type Clock, type TimerId } from "../core/clock.js";

export interface WorkerHooks {
  onApplied(changes: string[]): void;
  onStats(stats: PeerStats[]): void;
  onError(op: string, err: Error): void;
}

/** Least gap between two initiations toward one peer: the 20 ms above, plus jitter. */
export const TRIGGER_SPACING_MS = 50;
/**
 * A stats read asked for this long ago goes before any apply or trigger.
 * Otherwise it runs only when nothing else is queued, and in the scale lab
 * (40 joins at once, wireguard-go slow under load) a stream of triggers and
 * applies starved it for ~50 s: the engine saw no handshake, kept its peers
 * pending, and retriggered them, which fed the stream (then 32 peers turned
 * direct in one read).
 */
export const STATS_OVERDUE_MS = 250;

export class BackendWorker {
  private desired: DesiredState | undefined;
  /** Pending handshake triggers: public key → when asked and the handshake the asker had seen (epoch ms). */
  private readonly triggers = new Map<string, { asked: number; seen: number | undefined }>();
  /** Last initiation toward a peer that we caused (apply that added it, or trigger): public key → epoch ms. */
  private readonly initiatedAt = new Map<string, number>();
  /** Peers in the backend after the last successful apply. */
  private applied = new Set<string>();
  private wake: TimerId | undefined;
  private statsWanted = false;
  /** When the pending stats read was asked for. */
  private statsWantedSince = 0;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Cuts a retry wait short when the worker stops. */
  private readonly stopSignal = new AbortController();
  private failures = 0;
  private readonly clock: Clock;

  /** Settles when a call made on the backend before this worker (join --foreground) is done. */
  private after: Promise<unknown> | undefined;
  /** First delay before a failed apply is tried again (doubles up to 10 s). */
  private readonly retryMs: number;

  constructor(
    private readonly backend: Backend,
    private readonly hooks: WorkerHooks,
    options: { retryMs?: number; after?: Promise<unknown> | undefined; clock?: Clock } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.retryMs = options.retryMs ?? 500;
    this.after = options.after?.catch(() => undefined);
  }

  /** No more retries of failed applies (the daemon is stopping); what is queued still runs, once. */
  stop(): void {
    this.stopped = true;
    if (this.wake !== undefined) this.clock.clearTimer(this.wake);
    this.wake = undefined;
    this.stopSignal.abort();
  }

  apply(desired: DesiredState): void {
    this.desired = this.desired ? mergePending(this.desired, desired) : desired;
    this.kick();
  }

  /** seenHandshakeMs: see HandshakeTrigger; a repeated ask updates it (the newest view wins). */
  trigger(publicKey: string, seenHandshakeMs?: number): void {
    if (!canTriggerHandshake(this.backend)) return;
    const asked = this.triggers.get(publicKey)?.asked ?? this.clock.now();
    this.triggers.set(publicKey, { asked, seen: seenHandshakeMs });
    this.kick();
  }

  stats(): void {
    if (!this.statsWanted) this.statsWantedSince = this.clock.now();
    this.statsWanted = true;
    this.kick();
  }

  /** Resolves when everything asked so far is done. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.running) await this.running;
      else if (this.wake !== undefined) await sleep(this.clock, TRIGGER_SPACING_MS);
      else return;
    }
  }

  /**
   * A trigger asked for while this stats read was under way may be for a
   * peer whose handshake has just completed. Triggering re-creates the peer
   * (wg) and throws that fresh session away: the path flaps to pending. So a
   * queued trigger is dropped once the peer handshaked after it was asked
   * for (1 s slack: some backends report whole seconds).
   */
  private dropAnswered(stats: readonly PeerStats[]): void {
    for (const s of stats) {
      const asked = this.triggers.get(s.publicKey)?.asked;
      if (asked !== undefined && s.lastHandshakeMs !== undefined && s.lastHandshakeMs >= asked - 1_000)
        this.triggers.delete(s.publicKey);
    }
  }

  private kick(): void {
    this.running ??= this.loop().finally(() => (this.running = undefined));
  }

  private async loop(): Promise<void> {
    if (this.after) {
      await this.after;
      this.after = undefined;
    }
    for (;;) {
      const ready = this.desired ? undefined : this.readyTrigger();
      if (this.statsWanted && this.clock.now() - this.statsWantedSince >= STATS_OVERDUE_MS) {
        await this.readStats();
      } else if (this.desired) {
        const d = this.desired;
        this.desired = undefined;
        const ok = await this.backend.apply(d).then(
          (r) => {
            this.noteApplied(d);
            this.hooks.onApplied(r.changes);
            return true;
          },
          (e: Error) => {
            this.hooks.onError("apply", e);
            return false;
          },
        );
        if (ok) this.failures = 0;
        else if (!this.stopped) {
          // The engine believes this state is applied and will not send it
          // again until something changes: keep it (under any newer one,
          // whose endpoint choices win) and try again shortly. A busy
          // wireguard-go that missed a UAPI deadline is the usual cause.
          this.desired = this.desired ? mergePending(d, this.desired) : d;
          const wait = Math.min(10_000, this.retryMs * 2 ** this.failures++);
          await sleep(this.clock, wait, this.stopSignal.signal);
        }
      } else if (ready !== undefined) {
        const seen = this.triggers.get(ready)?.seen;
        this.triggers.delete(ready);
        this.initiatedAt.set(ready, this.clock.now());
        if (canTriggerHandshake(this.backend))
          await this.backend
            .triggerHandshake(ready, seen)
            .catch((e: Error) => this.hooks.onError("trigger", e));
      } else if (this.statsWanted) {
        await this.readStats();
      } else {
        this.wakeForTriggers();
        return;
      }
    }
  }

  private async readStats(): Promise<void> {
    this.statsWanted = false;
    await this.backend.stats().then(
      (s) => {
        this.dropAnswered(s);
        this.hooks.onStats(s);
      },
      (e: Error) => this.hooks.onError("stats", e),
    );
  }

  /** A pending trigger whose peer saw no initiation from us in the last TRIGGER_SPACING_MS. */
  private readyTrigger(): string | undefined {
    const now = this.clock.now();
    for (const key of this.triggers.keys())
      if ((this.initiatedAt.get(key) ?? -Infinity) + TRIGGER_SPACING_MS <= now) return key;
    return undefined;
  }

  private wakeForTriggers(): void {
    if (this.triggers.size === 0 || this.wake !== undefined || this.stopped) return;
    const at = Math.min(
      ...[...this.triggers.keys()].map((k) => (this.initiatedAt.get(k) ?? 0) + TRIGGER_SPACING_MS),
    );
    this.wake = this.clock.setTimer(Math.max(1, at - this.clock.now()), () => {
      this.wake = undefined;
      this.kick();
    });
  }

  /** Peers this apply added with an endpoint got an initiation from WireGuard itself (keepalive on add). */
  private noteApplied(d: DesiredState): void {
    const now = this.clock.now();
    for (const p of d.peers)
      if (!this.applied.has(p.publicKey) && p.endpoint) this.initiatedAt.set(p.publicKey, now);
    this.applied = new Set(d.peers.map((p) => p.publicKey));
    for (const key of this.initiatedAt.keys()) if (!this.applied.has(key)) this.initiatedAt.delete(key);
  }
}

/**
 * A newer desired state replaces a pending older one, except that a peer
 * without an endpoint in the newer one means "no opinion" (the engine only
 * names endpoints it is changing): the older, never applied choice stands.
 */
export function mergePending(older: DesiredState, newer: DesiredState): DesiredState {
  const chosen = new Map(older.peers.map((p) => [p.publicKey, p.endpoint]));
  return {
    ...newer,
    peers: newer.peers.map((p) => {
      const endpoint = p.endpoint ?? chosen.get(p.publicKey);
      return endpoint === undefined ? p : { ...p, endpoint };
    }),
  };
}
