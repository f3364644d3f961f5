/** Following event streams in registry-tier tests. */
import type { RegistryClient } from "../../src/client/registry-client.js";
import type { Event } from "../../src/core/protocol.js";

export interface Recorder {
  events: Event[];
  ready: Promise<void>;
  stop(): Promise<void>;
}

/** Follows a client's stream in the background, recording events. */
export function record(client: RegistryClient, lastEventId?: number): Recorder {
  const ac = new AbortController();
  const events: Event[] = [];
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const done = client.events({
    lastEventId,
    signal: ac.signal,
    onEvent: (e) => void events.push(e),
    onReady: () => onReady(),
  });
  return {
    events,
    ready,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
