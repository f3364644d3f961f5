/**
 * Path reports for the registry's web view (issue 16): this daemon's view
 * of each peer, from the same rows `scope status` prints, sent to
 * PUT /v1/networks/:net/paths (signed like every member request).
 *
 * When: the runtime calls changed() after every engine step; a report goes
 * out at most every MIN_INTERVAL_MS, carrying only the pairs whose shape
 * (path, hub, family, reason, PSK epoch) changed, plus every pair whose last
 * report is older than REFRESH_MS (latency and handshake age drift without
 * a change of shape). One request at a time; pairs of a failed request are
 * sent again with the next one. Views are sent in chunks the body limit
 * takes (PathReport allows 250).
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
  /** Per peer: the shape last accepted by the registry, and when. */
  private readonly sent = new Map<string, { shape: string; at: number }>();
  private timer: TimerId | undefined;
  private busy = false;
  /** changed() came while a report was out: look again once it is done. */
  private again = false;
  private lastAt = -Infinity;
  private closed = false;

  constructor(private readonly d: PathReporterDeps) {}

  /** Something may have changed: look within MIN_INTERVAL_MS of the last report. */
  changed(): void {
    if (this.busy) this.again = true;
    if (this.closed || this.timer !== undefined || this.busy) return;
    const wait = Math.max(0, this.lastAt + MIN_INTERVAL_MS - this.d.clock.now());
    this.timer = this.d.clock.setTimer(wait, () => {
      this.timer = undefined;
      void this.report();
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.d.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  /** The views due now: changed shape, or refreshed after REFRESH_MS. */
  due(now: number): PathView[] {
    const rows = this.d.peers();
    const hubs = new Map(rows.map((p) => [p.name, p.id]));
    const live = new Set(rows.map((p) => p.id));
    for (const id of this.sent.keys()) if (!live.has(id)) this.sent.delete(id);
    return rows
      .map((p) => viewOf(p, hubs, now))
      .filter((v) => {
        const s = this.sent.get(v.peer);
        return !s || s.shape !== shapeOf(v) || now - s.at >= REFRESH_MS;
      });
  }

  private async report(): Promise<void> {
    if (this.closed) return;
    const now = this.d.clock.now();
    const views = this.due(now);
    this.lastAt = now;
    if (views.length === 0) return;
    this.busy = true;
    try {
      for (let i = 0; i < views.length && !this.closed; i += CHUNK) {
        const chunk = views.slice(i, i + CHUNK);
        await this.d.send(chunk);
        for (const v of chunk) this.sent.set(v.peer, { shape: shapeOf(v), at: now });
      }
    } catch (e) {
      // Not marked sent: the next report (the next engine step, within MIN_INTERVAL_MS) carries them.
      this.d.onError(e as Error);
    } finally {
      this.busy = false;
      this.lastAt = this.d.clock.now();
    }
    if (this.again) {
      this.again = false;
      this.changed();
    }
  }
}
