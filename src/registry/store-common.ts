/**
 * What both stores share: row shapes, the event text with its id spliced in,
 * and the join rules (token checks, re-join, a newcomer's record), so the
 * SQLite and PostgreSQL stores differ only in how they read and lock rows.
 */
import { ScopeError } from "../core/errors.js";
import type { Event, Network, PathRecord, PathView, Peer, PeerRole } from "../core/protocol.js";
import { ipv6For } from "./ipam.js";
import type { EventDraft, JoinCommit, StoredEvent, TokenRecord, ViewerTokenRecord } from "./store.js";

export interface NetworkRow {
  name: string;
  cidr: string;
  cidr6: string | null;
  topology: Network["topology"];
  created_at: number;
}

export interface EventRow {
  id: number;
  data: string;
}

export interface TokenRow {
  id: string;
  network: string;
  uses: number;
  expires_at: number;
  role: PeerRole;
}

/** A whole token row (tokenByHash). */
export interface TokenRecordRow extends TokenRow {
  hash: string;
  created_at: number;
}

export const toTokenRecord = (r: TokenRecordRow): TokenRecord => ({
  id: r.id,
  network: r.network,
  hash: r.hash,
  uses: r.uses,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  role: r.role,
});

export const toNetwork = (r: NetworkRow): Network => ({
  name: r.name,
  cidr: r.cidr,
  ...(r.cidr6 ? { cidr6: r.cidr6 } : {}),
  topology: r.topology,
  createdAt: r.created_at,
});

/** Stored event text lacks the id (unknown before insert); it is spliced in front on the way out. */
export const withId = (r: EventRow): StoredEvent => {
  const json = `{"id":${r.id},${r.data.slice(1)}`;
  return { event: JSON.parse(json) as Event, json };
};

/** Refuses a token that is unknown, for another network or expired; the use count is the caller's. */
export function checkJoinToken(token: TokenRow | undefined, c: JoinCommit): TokenRow {
  if (!token) throw new ScopeError("forbidden", "unknown join token");
  if (token.network !== c.network) throw new ScopeError("token_invalid", "join token is for another network");
  if (token.expires_at <= c.now) throw new ScopeError("token_invalid", "join token expired");
  return token;
}

/**
 * A member re-joining keeps id and address; undefined when nothing changed (a
 * retried join). Its role stays the stored one (an admin's `peer set --role
 * edge` holds against an edge token) unless it joins with a hub token.
 */
export function rejoined(existing: Peer, c: JoinCommit, tokenRole: PeerRole): Peer | undefined {
  const role = tokenRole === "hub" ? "hub" : existing.role;
  const next = { ...existing, ...c.peer, role, updatedAt: existing.updatedAt } as Peer;
  return JSON.stringify(next) === JSON.stringify(existing) ? undefined : { ...next, updatedAt: c.now };
}

/** A newcomer's role is its token's, never its own claim. */
export const newPeer = (c: JoinCommit, network: Network, address: string, role: PeerRole): Peer => ({
  id: c.peerId,
  network: c.network,
  ...c.peer,
  role,
  address,
  ...(network.cidr6 ? { address6: ipv6For(network.cidr6, c.peerId) } : {}),
  joinedAt: c.now,
  updatedAt: c.now,
});

export function registryEvent<K extends "peerJoin" | "peerUpdate" | "peerLeave">(
  kind: K,
  network: string,
  ts: number,
  body: Extract<Event, { type: `cc.ltgc.scope:${K}` }>["body"],
): EventDraft {
  return { type: `cc.ltgc.scope:${kind}`, network, from: "registry", ts, body } as EventDraft;
}

// ---- web view (issue 16) ----

export interface ViewerTokenRow {
  id: string;
  network: string;
  hash: string;
  expires_at: number;
  created_at: number;
}

export const toViewerToken = (r: ViewerTokenRow): ViewerTokenRecord => ({
  id: r.id,
  network: r.network,
  hash: r.hash,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
});

/** A path view row: the view's JSON without its peer (a column), as both stores keep it. */
export interface PathRow {
  reporter: string;
  peer: string;
  data: string;
  reported_at: number;
}

export const pathRowOf = (reporter: string, v: PathView, now: number): PathRow => {
  const { peer, ...rest } = v;
  return { reporter, peer, data: JSON.stringify(rest), reported_at: now };
};

export const toPathRecord = (r: PathRow): PathRecord => ({
  peer: r.peer,
  ...(JSON.parse(r.data) as Omit<PathView, "peer">),
  from: r.reporter,
  reportedAt: r.reported_at,
});

/** Shared DDL of the two stores' path table (types are spelled alike; BIGINT is INTEGER to SQLite). */
export const PATHS_DDL = `CREATE TABLE paths (
     network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE,
     reporter TEXT NOT NULL, peer TEXT NOT NULL, data TEXT NOT NULL, reported_at BIGINT NOT NULL,
     PRIMARY KEY (network, reporter, peer));
   CREATE INDEX paths_by_peer ON paths (network, peer);
   CREATE TABLE viewer_tokens (
     id TEXT PRIMARY KEY, network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE,
     hash TEXT NOT NULL UNIQUE, expires_at BIGINT NOT NULL, created_at BIGINT NOT NULL);`;

/** Both stores' statements on those tables; $n placeholders (SQLite reads them as numbered ones too). */
export const PATH_SQL = {
  upsert: `INSERT INTO paths (network, reporter, peer, data, reported_at)
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM peers WHERE network = $1 AND id = $3)
     ON CONFLICT (network, reporter, peer) DO UPDATE SET data = excluded.data, reported_at = excluded.reported_at`,
  list: "SELECT reporter, peer, data, reported_at FROM paths WHERE network = $1 ORDER BY reporter, peer",
  dropPeer: "DELETE FROM paths WHERE network = $1 AND (reporter = $2 OR peer = $2)",
  insertViewer:
    "INSERT INTO viewer_tokens (id, network, hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
  viewerByHash: "SELECT id, network, hash, expires_at, created_at FROM viewer_tokens WHERE hash = $1",
} as const;
