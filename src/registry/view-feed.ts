/**
 * Wake-ups for the web view's live stream (issue 16): a network's membership
 * changed (peerJoin, peerLeave, peerUpdate from the store) or a member sent
 * a path report. Watchers get a bare "changed" and read the view again, so
 * no record (and no key) ever travels on this stream.
 *
 * Per watcher, wake-ups are coalesced to one per COALESCE_MS: a big network
 * reports many times a second, and a page needs the news, not each of them.
 * Path reports wake only the replica that took them (PostgreSQL replicas
 * share membership events, not reports): a page on another replica sees a
 * report with the next membership change, or at the heartbeat (the page
 * reads the view again on each).
 */
import type { Store } from "./store.js";

export const COALESCE_MS = 300;

type Watcher = { wake: () => void; timer: NodeJS.Timeout | undefined; last: number };

export class ViewFeed {
  private readonly byNetwork = new Map<string, Set<Watcher>>();

  /** Feeds the store's membership events in. */
  follow(store: Store): this {
    store.onEvent((e) => {
      const t = e.event.type;
      if (t.endsWith("peerJoin") || t.endsWith("peerLeave") || t.endsWith("peerUpdate"))
        this.changed(e.event.network);
    });
    return this;
  }

  /** Calls wake (at most once per COALESCE_MS) after each change of network; returns the unsubscribe. */
  watch(network: string, wake: () => void): () => void {
    const w: Watcher = { wake, timer: undefined, last: 0 };
    let set = this.byNetwork.get(network);
    if (!set) this.byNetwork.set(network, (set = new Set()));
    set.add(w);
    return () => {
      if (w.timer) clearTimeout(w.timer);
      set.delete(w);
      if (set.size === 0) this.byNetwork.delete(network);
    };
  }

  changed(network: string): void {
    for (const w of this.byNetwork.get(network) ?? []) {
      if (w.timer) continue;
      const wait = Math.max(0, w.last + COALESCE_MS - Date.now());
      w.timer = setTimeout(() => {
        w.timer = undefined;
        w.last = Date.now();
        w.wake();
      }, wait);
    }
  }
}
