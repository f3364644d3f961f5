/**
 * Time, injected. Everything in src/core reads time and schedules work only
 * through a Clock, so the join state machine and the prober run the same way
 * under the real clock and under the fake one in test/unit/helpers.
 */
export type TimerId = number;

export interface Clock {
  /** Milliseconds since the Unix epoch. Monotonic enough for timeouts; never goes back under the fake. */
  now(): number;
  /** Calls fn once after ms. The returned id is valid for clearTimer until it fires. */
  setTimer(ms: number, fn: () => void): TimerId;
  /** Cancels a pending timer; unknown or fired ids are ignored. */
  clearTimer(id: TimerId): void;
}

/**
 * The real clock, for entry points. now() is Date.now(): whole ms, as the
 * registry stores and signs (its schemas want integers).
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return Number(t[Symbol.toPrimitive]());
  },
  clearTimer: (id) => clearTimeout(id),
};

/**
 * The real clock with fractional milliseconds (monotonic, from the process's
 * time origin), for the edge daemon: probe round trips on a LAN or in the lab
 * are well under a millisecond. Encoders floor where the wire wants whole ms
 * (probe/codec.ts).
 */
export const preciseClock: Clock = {
  ...systemClock,
  now: () => performance.timeOrigin + performance.now(),
};

/** Resolves after ms on clock, or at once when signal aborts (it never rejects); the timer goes either way. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clock.clearTimer(id);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const id = clock.setTimer(ms, done);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A source of uniform numbers in [0, 1), for jitter; injected like the clock so tests are repeatable. */
export type Random = () => number;
export const systemRandom: Random = () => Math.random();
