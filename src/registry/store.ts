/**
 * The registry's storage seam. SqliteStore (sqlite-store.ts) is the default;
 * PgStore (pg-store.ts) serves several replicas from one PostgreSQL database
 * (its `onEvent` is fed by LISTEN/NOTIFY, so each replica sees every
 * replica's events).
 *
 * Contract, for every implementation:
 * - Each method is atomic: it either happens completely or not at all, and
 *   the events it returns are committed when the promise resolves.
 * - Event ids increase strictly within a network and are never reused, also
 *   across restarts; an event is visible to readers only once every lower id
 *   of its network is (no reader resuming with `id > last` can skip one that
 *   commits late). Listeners registered with onEvent see every committed
 *   event exactly once, in id order per network. (SQLite numbers over the
 *   whole registry, PostgreSQL per network: both satisfy this.)
 * - Nothing stored lets a reader join or impersonate a peer: tokens are kept
 *   as SHA-256 hashes and peers as public keys.
 */
import type { z } from "zod";
import type {
  Event,
  Network,
  Peer,
  PeerAdminUpdate,
  PeerInput,
  PeerRole,
  PeerUpdate,
  PathRecord,
  PathView,
} from "../core/protocol.js";

export interface TokenRecord {
  id: string;
  network: string;
  /** SHA-256 hex of the token text. */
  hash: string;
  uses: number;
  expiresAt: number;
  createdAt: number;
  /** The role a peer joining with it gets. */
  role: PeerRole;
}

/** A read-only token for the web view of one network (kept apart from join tokens: it can never join). */
export interface ViewerTokenRecord {
  id: string;
  network: string;
  /** SHA-256 hex of the token text. */
  hash: string;
  expiresAt: number;
  createdAt: number;
}

/** An event as stored: the parsed record and its JSON text, serialized once at emission. */
export interface StoredEvent {
  event: Event;
  json: string;
}

/** An event before the store gives it an id (distributes over the union, which Omit does not). */
export type EventDraft = Event extends infer E ? (E extends Event ? Omit<E, "id"> : never) : never;

/** Checked peer fields for join; the store adds id-derived and allocated fields. */
export interface JoinCommit {
  network: string;
  tokenHash: string;
  peerId: string;
  /** The member's claim about its role is not part of it: the role is the token's (or the admin's). */
  peer: Omit<z.infer<typeof PeerInput>, "role">;
  now: number;
}

export interface JoinOutcome {
  self: Peer;
  network: Network;
  /**
   * The other members as a JSON array text, ordered by address: at 10 000
   * peers that is ~5 MB, and each join parsing and re-serializing it cost
   * more than the fan-out itself; the stored record texts are joined as is.
   */
  peersJson: string;
  /** peerJoin for a newcomer, peerUpdate for a member whose record changed, none for an identical re-join. */
  event: StoredEvent | undefined;
  /** Last event id at the time of the join (includes `event`). */
  lastEventId: number;
}

export interface EventQuery {
  network: string;
  /** Only events with id greater than this. */
  after: number;
  /** The subscriber: directed events to others and its own messages are left out. */
  viewer: string;
  limit: number;
}

export interface RetentionPolicy {
  /** Events older than this (ms) are dropped. */
  maxAgeMs: number;
  /** At most this many events per network are kept. */
  maxPerNetwork: number;
}

export interface Store {
  createNetwork(network: Network): Promise<void>; // conflict if the name exists
  getNetwork(name: string): Promise<Network | undefined>;
  listNetworks(): Promise<Network[]>;

  createToken(token: TokenRecord): Promise<void>;
  /** The token with this hash, read only: /join checks it before writing anything (even a nonce). */
  tokenByHash(hash: string): Promise<TokenRecord | undefined>;

  /**
   * Joins (or re-joins) a peer. Refuses with ScopeError: token unknown
   * (forbidden), for another network, expired or used up (token_invalid),
   * network full (address_exhausted). A member re-joining with a known,
   * unexpired token of this network keeps its id and address and uses no
   * token use, so a retried join is harmless.
   * The role is the token's for a newcomer; a re-join keeps the stored role
   * unless its token is a hub token (so an admin's `peer set --role edge`
   * holds against an edge token, and a hub token promotes).
   */
  join(commit: JoinCommit): Promise<JoinOutcome>;
  getPeer(network: string, id: string): Promise<Peer | undefined>;
  listPeers(network: string): Promise<Peer[]>;
  /** listPeers as a JSON array text, without parsing the records (a member resync at 10 000 peers). */
  listPeersJson(network: string): Promise<string>;
  /** Peers per network, for /metrics. */
  countPeers(): Promise<Map<string, number>>;
  /** not_found if the peer is gone; emits peerUpdate. PeerAdminUpdate only from admin routes. */
  updatePeer(
    network: string,
    id: string,
    update: PeerUpdate | PeerAdminUpdate,
    now: number,
  ): Promise<{ peer: Peer; event: StoredEvent }>;
  /** Removes the peer and frees its address; emits peerLeave. undefined if it was not a member. */
  removePeer(
    network: string,
    id: string,
    reason: "left" | "removed",
    now: number,
  ): Promise<StoredEvent | undefined>;

  /** Stores a member message; id and ts are assigned here. */
  appendEvent(draft: EventDraft): Promise<StoredEvent>;
  eventsAfter(q: EventQuery): Promise<StoredEvent[]>;
  /** No lower than any event id assigned in `network` (or in any network); 0 when none. */
  lastEventId(network?: string): Promise<number>;
  /** Events with id <= this were dropped for this network by retention: a resume from there must resync. */
  prunedThrough(network: string): Promise<number>;
  pruneEvents(policy: RetentionPolicy, now: number): Promise<number>;
  onEvent(listener: (e: StoredEvent) => void): void;

  createViewerToken(token: ViewerTokenRecord): Promise<void>;
  viewerTokenByHash(hash: string): Promise<ViewerTokenRecord | undefined>;

  /**
   * Keeps each view as the latest of its (reporter, peer) pair; views about
   * peers that are not members are dropped. removePeer drops the pairs of
   * a peer that leaves, on both sides.
   */
  reportPaths(network: string, reporter: string, views: readonly PathView[], now: number): Promise<void>;
  /** Every stored view of the network, by reporter and peer. */
  listPaths(network: string): Promise<PathRecord[]>;

  /** Records a nonce; false if it was seen before (a replay). */
  useNonce(key: string, expiresAt: number): Promise<boolean>;
  pruneNonces(now: number): Promise<number>;

  close(): void | Promise<void>;
}
