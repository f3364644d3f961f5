/**
 * Per-peer deadlines in one min-heap, so the engine finds the peers that are
 * due, and its next tick, without looking at every peer (issue 9: work per
 * input that does not grow with the mesh). Entries are never removed in
 * place: a peer's newer deadline is pushed, and a popped entry that no
 * longer matches the peer's current dueAt is stale and skipped.
 */

interface Entry {
  at: number;
  id: string;
}

export interface Deadlines {
  heap: Entry[];
}

export const newDeadlines = (): Deadlines => ({ heap: [] });

export function pushDeadline(d: Deadlines, id: string, at: number): void {
  const h = d.heap;
  h.push({ at, id });
  let i = h.length - 1;
  while (i > 0) {
    const up = (i - 1) >> 1;
    const [a, b] = [h[i], h[up]];
    if (!a || !b || b.at <= a.at) break;
    [h[i], h[up]] = [b, a];
    i = up;
  }
}

function pop(d: Deadlines): Entry | undefined {
  const h = d.heap;
  const top = h[0];
  const last = h.pop();
  if (h.length === 0 || !last) return top;
  h[0] = last;
  let i = 0;
  for (;;) {
    const [l, r] = [2 * i + 1, 2 * i + 2];
    let m = i;
    if ((h[l]?.at ?? Infinity) < (h[m]?.at ?? Infinity)) m = l;
    if ((h[r]?.at ?? Infinity) < (h[m]?.at ?? Infinity)) m = r;
    if (m === i) break;
    [h[i], h[m]] = [h[m] as Entry, h[i] as Entry];
    i = m;
  }
  return top;
}

/**
 * Pops every entry due at now; returns the ids whose current deadline
 * (current(id)) is that entry, i.e. the peers to look at now.
 */
export function takeDue(d: Deadlines, now: number, current: (id: string) => number | undefined): string[] {
  const due: string[] = [];
  while (d.heap.length > 0 && (d.heap[0]?.at ?? Infinity) <= now) {
    const e = pop(d);
    if (e && current(e.id) === e.at) due.push(e.id);
  }
  return due;
}

/** The earliest live deadline, dropping stale entries on the way. */
export function nextDeadline(d: Deadlines, current: (id: string) => number | undefined): number | undefined {
  for (;;) {
    const top = d.heap[0];
    if (!top) return undefined;
    if (current(top.id) === top.at) return top.at;
    pop(d);
  }
}

/** Rebuilds the heap from scratch when stale entries dominate (after many reschedules). */
export function compact(d: Deadlines, live: Iterable<[string, number | undefined]>): void {
  d.heap = [];
  for (const [id, at] of live) if (at !== undefined) pushDeadline(d, id, at);
}
