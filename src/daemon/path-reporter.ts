/**
 * Path reports for the registry's web view (issue 16): this daemon's view
 * of each peer, from the same rows `scope status` prints, sent to
 * PUT /v1/networks/:net/paths (signed like every member request).
 *
 * When: the runtime calls changed() after every engine step. The reporter
 * wakes only when a pair's shape (path, hub, family, reason, PSK epoch)
 * differs from what the registry holds, at most every MIN_INTERVAL_MS, and
 * then sends only those pairs; and every REFRESH_MS it sends every pair at
 * once (latency and handshake age drift without a change of shape). Per-pair
 * refresh deadlines would spread over the join and cost one signed request
 * every MIN_INTERVAL_MS for ever on an idle 40-peer mesh; one deadline costs
 * one request per REFRESH_MS. One request at a time; pairs of a failed
 * request are sent again with the next one. Views are sent in chunks the
 * body limit takes (PathReport allows 250).
 */
import type { Clock, TimerId } from "../core/clock.js";
import type { PeerStatus } from "../core/engine/index.js";
import type { PathView } from "../core/protocol.js";

export const MIN_INTERVAL_MS = 2_000;
export const REFRESH_MS = 30_000;
const CHUNK = 200;

export interface PathReporterDeps {
  clock: Pick<Clock, "now" | "setTimer" | "clearTimer">;
  /** The status rows now (Daemon.status().peers). */
  peers: () => readonly PeerStatus[];
  send: (views: PathView[]) => Promise<void>;
  onError: (err: Error) => void;
}

/** A status row as the registry keeps it: the hub by id, the handshake as an age. */
export function viewOf(p: PeerStatus, hubIdByName: ReadonlyMap<string, string>, now: number): PathView {
  return {
    peer: p.id,
    path: p.path,
    hub: p.path === "hub" && p.hub !== null ? (hubIdByName.get(p.hub) ?? null) : null,
    family: p.family,
    latencyMs: p.latencyMs === null ? null : Math.min(60_000, p.latencyMs),
    handshakeAgeS:
      p.lastHandshakeMs === null ? null : Math.max(0, Math.floor((now - p.lastHandshakeMs) / 1000)),
    pskEpoch: p.psk?.epoch ?? null,
    reason: p.path === "direct" || p.reason === null ? null : p.reason.slice(0, 200),
  };
}

const shapeOf = (v: PathView): string => `${v.path}|${v.hub}|${v.family}|${v.reason}|${v.pskEpoch}`;

export class PathReporter {
  /** Per peer: the shape last accepted by the registry. */
  private readonly sent = new Map<string, string>();
  private timer: TimerId | undefined;
  /** When the timer fires: a look for changed shapes, or the full refresh. */
  private timerAt = Infinity;
  private busy = false;
  /** changed() came while a report was out: look again once it is done. */
  private again = false;
  private lastAt = -Infinity;
  /** When every pair was last sent (the refresh deadline is this + REFRESH_MS). */
  private refreshedAt = -Infinity;
  private closed = false;

  constructor(private readonly d: PathReporterDeps) {}

  /** Something may have changed: if a pair's shape did, look within MIN_INTERVAL_MS of the last report. */
  changed(): void {
    if (this.busy) this.again = true;
    if (this.closed || this.busy) return;
    const now = this.d.clock.now();
    const soonest = Math.max(now, this.lastAt + MIN_INTERVAL_MS);
    // A look is already due as soon as one may be (the join's burst of steps): no status read.
    if (this.timer !== undefined && this.timerAt <= soonest) return;
    // A status read, no I/O: idle engine steps are a few a minute.
    const dirty = this.changedShapes(now).length > 0;
    this.arm(dirty ? soonest : Math.max(soonest, this.refreshedAt + REFRESH_MS));
  }

  close(): void {
    this.closed = true;
    this.disarm();
  }

  /** The views due now: changed shape, or all of them once REFRESH_MS has passed since the last refresh. */
  due(now: number): PathView[] {
    return now - this.refreshedAt >= REFRESH_MS ? this.views(now) : this.changedShapes(now);
  }

  private views(now: number): PathView[] {
    const rows = this.d.peers();
    const hubs = new Map(rows.map((p) => [p.name, p.id]));
    const live = new Set(rows.map((p) => p.id));
    for (const id of this.sent.keys()) if (!live.has(id)) this.sent.delete(id);
    return rows.map((p) => viewOf(p, hubs, now));
  }

  private changedShapes(now: number): PathView[] {
    return this.views(now).filter((v) => this.sent.get(v.peer) !== shapeOf(v));
  }

  /** Keeps the earlier of the armed wake-up and `at`. */
  private arm(at: number): void {
    if (this.timer !== undefined && this.timerAt <= at) return;
    this.disarm();
    this.timerAt = at;
    this.timer = this.d.clock.setTimer(at - this.d.clock.now(), () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      void this.report();
    });
  }

  private disarm(): void {
    if (this.timer !== undefined) this.d.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private async report(): Promise<void> {
    if (this.closed) return;
    const now = this.d.clock.now();
    const full = now - this.refreshedAt >= REFRESH_MS;
    const views = this.due(now);
    this.lastAt = now;
    this.busy = true;
    let ok = true;
    try {
      for (let i = 0; i < views.length && !this.closed; i += CHUNK) {
        const chunk = views.slice(i, i + CHUNK);
        await this.d.send(chunk);
        for (const v of chunk) this.sent.set(v.peer, shapeOf(v));
      }
    } catch (e) {
      // Not marked sent: the next look (within MIN_INTERVAL_MS of the next engine step) carries them.
      ok = false;
      this.d.onError(e as Error);
    } finally {
      this.busy = false;
      this.lastAt = this.d.clock.now();
    }
    if (full && ok) this.refreshedAt = now;
    if (this.closed) return;
    // The next refresh comes even if no engine step does; a failed one is tried again with
    // the next step, or after REFRESH_MS at the latest.
    this.arm(ok ? this.refreshedAt + REFRESH_MS : this.lastAt + REFRESH_MS);
    if (this.again) {
      this.again = false;
      this.changed();
    }
  }
}
