/**
 * What both stores share: row shapes, the event text with its id spliced in,
 * and the join rules (token checks, re-join, a newcomer's record), so the
 * SQLite and PostgreSQL stores differ only in how they read and lock rows.
 */
import { ScopeError } from "../core/errors.js";
import type { Event, Network, Peer, PeerRole } from "../core/protocol.js";
import { ipv6For } from "./ipam.js";
import type { EventDraft, JoinCommit, StoredEvent, TokenRecord } from "./store.js";

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
