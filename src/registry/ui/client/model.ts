/**
 * The page's data model, pure: the registry's ViewData in, what the graph
 * and the table show out. One row per directed view (what A's daemon says
 * about B, as `scope status` on A does); one graph edge per pair, drawn by
 * the worse of its two views (none < pending < hub < direct).
 */
import type { PathKind, PathRecord, ViewData, ViewPeer } from "../../../core/protocol.js";

export interface Row {
  key: string;
  from: string;
  fromName: string;
  to: string;
  toName: string;
  path: PathKind;
  hubName: string;
  family: string;
  latencyMs: number | null;
  /** Seconds since the last handshake, now (the report's age added). */
  handshakeAgeS: number | null;
  pskEpoch: number | null;
  reason: string;
}

export interface Edge {
  key: string;
  a: string;
  b: string;
  path: PathKind;
  label: string;
  rows: Row[];
}

const RANK: Record<PathKind, number> = { none: 0, pending: 1, hub: 2, direct: 3 };

export function rowsOf(view: ViewData): Row[] {
  const byId = new Map<string, ViewPeer>(view.peers.map((p) => [p.id, p]));
  const name = (id: string | null) => (id === null ? "" : (byId.get(id)?.name ?? id));
  return view.paths.map((p: PathRecord) => ({
    key: `${p.from}>${p.peer}`,
    from: p.from,
    fromName: name(p.from),
    to: p.peer,
    toName: name(p.peer),
    path: p.path,
    hubName: p.path === "hub" ? name(p.hub) : "",
    family: p.family ?? "",
    latencyMs: p.latencyMs,
    handshakeAgeS:
      p.handshakeAgeS === null
        ? null
        : p.handshakeAgeS + Math.max(0, Math.round((view.now - p.reportedAt) / 1000)),
    pskEpoch: p.pskEpoch,
    reason: p.reason ?? "",
  }));
}

export function edgesOf(rows: readonly Row[]): Edge[] {
  const edges = new Map<string, Edge>();
  for (const r of rows) {
    const [a, b] = r.from < r.to ? [r.from, r.to] : [r.to, r.from];
    const key = `${a}-${b}`;
    const e = edges.get(key);
    if (!e) edges.set(key, { key, a, b, path: r.path, label: "", rows: [r] });
    else {
      e.rows.push(r);
      if (RANK[r.path] < RANK[e.path]) e.path = r.path;
    }
  }
  for (const e of edges.values()) e.label = edgeLabel(e);
  return [...edges.values()];
}

function edgeLabel(e: Edge): string {
  const lat = e.rows.map((r) => r.latencyMs).filter((x): x is number => x !== null);
  const ms = lat.length ? `${Math.min(...lat).toFixed(1)} ms` : "";
  const hub = e.rows.find((r) => r.path === "hub")?.hubName;
  if (e.path === "hub") return `via ${hub ?? "hub"}${ms ? ` ${ms}` : ""}`;
  if (e.path === "direct") return ms;
  return e.path;
}

/** Why a pair is not direct, in words, both ends; empty for a direct pair. */
export function whyNot(e: Edge): string[] {
  return e.rows
    .filter((r) => r.path !== "direct")
    .map(
      (r) =>
        `${r.fromName} → ${r.toName}: ${r.path}${r.hubName ? ` via ${r.hubName}` : ""}${r.reason ? ` (${r.reason})` : ""}`,
    );
}

export type SortKey =
  | "fromName"
  | "toName"
  | "path"
  | "hubName"
  | "family"
  | "latencyMs"
  | "handshakeAgeS"
  | "pskEpoch"
  | "reason";

export function sortRows(rows: Row[], key: SortKey, down: boolean): Row[] {
  const dir = down ? -1 : 1;
  return rows.sort((x, y) => {
    const a = x[key];
    const b = y[key];
    if (a === b) return x.key < y.key ? -1 : 1;
    if (a === null) return 1;
    if (b === null) return -1;
    return (a < b ? -1 : 1) * dir;
  });
}
