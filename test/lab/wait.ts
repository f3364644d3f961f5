// Poll a condition instead of sleeping a guessed time: tests finish as soon as
// the fact holds, and a timeout names what never became true.

export class WaitTimeout extends Error {
  override readonly name = "WaitTimeout";
}

export interface WaitOptions {
  readonly timeoutMs: number;
  /** Pause between polls; default 50 ms. */
  readonly intervalMs?: number;
  /** Says what was awaited, for the timeout message. */
  readonly what?: string;
}

/**
 * Resolves with the first truthy value `cond` returns (errors thrown by cond
 * count as "not yet"), or rejects with WaitTimeout carrying the last error.
 */
export async function waitFor<T>(
  cond: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await cond();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `; last error: ${lastError.message}` : "";
      throw new WaitTimeout(
        `timed out after ${opts.timeoutMs} ms waiting for ${opts.what ?? "condition"}${cause}`,
      );
    }
    await delay(Math.min(opts.intervalMs ?? 50, Math.max(0, deadline - Date.now())));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
