/**
 * GET /v1/networks/:net/events: replay from the store, then live from the hub.
 *
 * Order of operations is what makes resume lossless: subscribe first (live
 * events are queued), then read the store after the resume point, then go
 * live, dropping queued events the replay already sent. Event ids come from
 * the store, so this holds across a registry restart.
 */
import type { Context } from "koa";
import type { RegistryDeps } from "./deps.js";
import { controlFrame, sseFrame } from "./events.js";

const REPLAY_PAGE = 500;
/** Tells EventSource-style clients how long to wait before reconnecting. */
const RETRY_MS = 2000;

export async function streamEvents(
  ctx: Context,
  deps: RegistryDeps,
  network: string,
  peerId: string,
  after: number | undefined,
): Promise<void> {
  const { store, hub } = deps;
  ctx.respond = false;
  const res = ctx.res;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no", // nginx: do not buffer the stream
    "x-request-id": String(ctx.state.requestId),
  });
  res.write(`retry: ${RETRY_MS}\n\n`);
  const sub = hub.subscribe(network, peerId, res);

  const head = await store.lastEventId(network);
  if (after !== undefined) {
    const pruned = await store.prunedThrough(network);
    if (after < pruned || after > head) {
      const reason =
        after > head ? "unknown event id (registry data was reset?)" : "resume point older than retention";
      sub.write(controlFrame("resync", head, reason), head);
    } else {
      let last = after;
      for (;;) {
        const page = await store.eventsAfter({ network, after: last, viewer: peerId, limit: REPLAY_PAGE });
        for (const e of page) sub.write(sseFrame(e), e.event.id);
        if (page.length < REPLAY_PAGE || res.destroyed) break;
        last = page[page.length - 1]?.event.id ?? last;
      }
    }
  }
  // Replay may have gone past `head` (events committed meanwhile); never announce a lower id than was sent.
  const upTo = Math.max(sub.position, head);
  sub.write(controlFrame("ready", upTo), upTo);
  sub.live(upTo);
}
