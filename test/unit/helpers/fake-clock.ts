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

/** Throws when clock still has timers: what useFakeClock() checks after each passing test. */
export function assertNoPendingTimers(clock: FakeClock, title: string): void {
  const n = clock.pending();
  if (n > 0) throw new Error(`"${title}" ended with ${n} timer(s) pending: stop what you started`);
}

/**
 * The afterEach of useFakeClock(): fails a passed test that left timers
 * (a failed one keeps its own error), and clears the clock either way.
 */
export function leakCheck(
  clock: FakeClock,
  test: { state?: string | undefined; title: string } | undefined,
): void {
  try {
    if (test?.state === "passed") assertNoPendingTimers(clock, test.title);
  } finally {
    clock.clearAll();
  }
}

/**
 * A fresh FakeClock per test; a test that leaves timers pending fails. Helpers
 * that stop a simulated world (SimWorld.stop, DaemonWorld.stop) let packets in
 * flight arrive but never clear the clock: what is still pending is a leak.
 */
export function useFakeClock(): { readonly clock: FakeClock } {
  const holder = { clock: new FakeClock() };
  beforeEach(() => {
    holder.clock = new FakeClock();
  });
  // A failing hook fails the run, naming the test: that is the point.
  afterEach(function () {
    leakCheck(holder.clock, this.currentTest);
  });
  return holder;
}
