/**
 * A fake Clock (tailscale's tstest.Clock): time moves only by advance(), and
 * timers run in deadline order, each seeing now() equal to its deadline.
 * useFakeClock() fails a test that ends with timers still pending, which
 * catches components that forget to stop.
 */
import type { Clock, TimerId } from "../../../src/core/clock.js";

interface Pending {
  id: TimerId;
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t: number;
  private nextId = 1;
  private seq = 0;
  private readonly timers = new Map<TimerId, Pending>();

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerId {
    const id = this.nextId++;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), seq: this.seq++, fn });
    return id;
  }

  clearTimer(id: TimerId): void {
    this.timers.delete(id);
  }

  /** Runs every timer due within ms, in order (timers set meanwhile included), then sets now to the end. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.earliest();
      if (!next || next.at > end) break;
      this.timers.delete(next.id);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }

  /** Advances in small steps until cond() holds or limitMs passed; returns the time it took. */
  advanceUntil(cond: () => boolean, limitMs: number, stepMs = 1): number {
    const start = this.t;
    while (!cond() && this.t - start < limitMs) this.advance(stepMs);
    return this.t - start;
  }

  pending(): number {
    return this.timers.size;
  }

  clearAll(): void {
    this.timers.clear();
  }

  private earliest(): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.timers.values())
      if (!best || p.at < best.at || (p.at === best.at && p.seq < best.seq)) best = p;
    return best;
  }
}

/** A fresh FakeClock per test; a test that leaves timers pending fails. */
export function useFakeClock(): { readonly clock: FakeClock } {
  const holder = { clock: new FakeClock() };
  beforeEach(() => {
    holder.clock = new FakeClock();
  });
  afterEach(function () {
    const n = holder.clock.pending();
    holder.clock.clearAll();
    // A failing hook fails the run, naming the test: that is the point.
    if (n > 0 && this.currentTest?.state === "passed") {
      throw new Error(`"${this.currentTest.title}" ended with ${n} timer(s) pending: stop what you started`);
    }
  });
  return holder;
}
