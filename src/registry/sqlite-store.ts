/**
 * The default Store: one SQLite file (better-sqlite3, WAL). Every method runs
 * synchronously inside one transaction, so the event listeners see events in
 * commit order without further locking. Schema changes are numbered
 * migrations tracked in PRAGMA user_version.
 */
import { closeSync, chmodSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { ScopeError } from "../core/errors.js";
import type { Network, PathRecord, PathView, Peer, PeerAdminUpdate, PeerUpdate } from "../core/protocol.js";
import { allocateIpv4 } from "./ipam.js";
import {
  checkJoinToken,
  newPeer,
  registryEvent,
  rejoined,
  toNetwork,
  withId,
  type EventRow,
  type NetworkRow,
  type TokenRecordRow,
  toTokenRecord,
  PATH_SQL,
  PATHS_DDL,
  pathRowOf,
  toPathRecord,
  toViewerToken,
  type PathRow,
  type ViewerTokenRow,
} from "./store-common.js";
import type {
  EventDraft,
  EventQuery,
  JoinCommit,
  JoinOutcome,
  RetentionPolicy,
  Store,
  StoredEvent,
  TokenRecord,
  ViewerTokenRecord,
} from "./store.js";

type Db = Database.Database;

/** PATH_SQL's $1, $2, … bound from positional values (better-sqlite3 names them "1", "2"). */
const numbered = (...values: unknown[]) => Object.fromEntries(values.map((v, i) => [i + 1, v]));

/** Index = version reached after running it. Append only: released databases have run the earlier ones. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE networks (
     name TEXT PRIMARY KEY, cidr TEXT NOT NULL, cidr6 TEXT, topology TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE tokens (
     id TEXT PRIMARY KEY, network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE,
     hash TEXT NOT NULL UNIQUE, uses INTEGER NOT NULL, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE peers (
     network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE, id TEXT NOT NULL,
     name TEXT NOT NULL, wg_key TEXT NOT NULL, address TEXT NOT NULL, record TEXT NOT NULL,
     PRIMARY KEY (network, id), UNIQUE (network, address), UNIQUE (network, name), UNIQUE (network, wg_key));
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT,
     ts INTEGER NOT NULL, data TEXT NOT NULL);
   CREATE INDEX events_by_network ON events (network, id);`,
  // v2: replay protection across restarts, and event retention with a resync watermark.
  `CREATE TABLE nonces (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
   CREATE INDEX nonces_by_expiry ON nonces (expires_at);
   ALTER TABLE networks ADD COLUMN pruned_through INTEGER NOT NULL DEFAULT 0;`,
  // v3: hub tokens (roles are the admin's word, never the member's).
  `ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'edge';`,
  // v4: path reports and viewer tokens for the web view (issue 16).
  PATHS_DDL,
];

/** Runs the migrations a database lacks; refuses a database written by a newer registry. */
export function migrate(db: Db, migrations: readonly string[] = MIGRATIONS): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > migrations.length) {
    throw new ScopeError(
      "config",
      `database schema v${current} is newer than this registry (v${migrations.length})`,
    );
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v] ?? "");
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

interface RosterRow {
  id: string;
  address: string;
  record: string;
}

/**
 * A network's member records as stored text, kept in step with commits so
 * a join's peer list neither reads 10 000 rows nor parses them. The sorted
 * view is rebuilt lazily after a change (a sort of 10 000 short keys).
 */
class Roster {
  private sorted: RosterRow[] | undefined;

  constructor(private readonly byId: Map<string, RosterRow>) {}

  set(row: RosterRow): void {
    this.byId.set(row.id, row);
    this.sorted = undefined;
  }

  delete(id: string): void {
    if (this.byId.delete(id)) this.sorted = undefined;
  }

  /** JSON array of every record but `except`'s, by address (SQLite's BINARY order: addresses are ASCII). */
  json(except?: string): string {
    this.sorted ??= [...this.byId.values()].sort((a, b) =>
      a.address < b.address ? -1 : a.address > b.address ? 1 : 0,
    );
    const parts: string[] = [];
    for (const r of this.sorted) if (r.id !== except) parts.push(r.record);
    return `[${parts.join(",")}]`;
  }
}

export class SqliteStore implements Store {
  private readonly db: Db;
  private readonly listeners: ((e: StoredEvent) => void)[] = [];
  /** Loaded on first use per network; only ever changed after a commit. */
  private readonly rosters = new Map<string, Roster>();
  private readonly stmt;

  /** file: the database path; created 0600 (the directory's mode is the caller's business). */
  constructor(file: string) {
    if (file !== ":memory:") {
      closeSync(openSync(file, "a", 0o600));
      chmodSync(file, 0o600);
    }
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    // NORMAL under WAL: a commit survives a process crash (SIGKILL), which is what event resume needs.
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    migrate(this.db);
    const db = this.db;
    this.stmt = {
      network: db.prepare<[string], NetworkRow>("SELECT * FROM networks WHERE name = ?"),
      networks: db.prepare<[], NetworkRow>("SELECT * FROM networks ORDER BY name"),
      insertNetwork: db.prepare(
        "INSERT INTO networks (name, cidr, cidr6, topology, created_at) VALUES (@name, @cidr, @cidr6, @topology, @createdAt)",
      ),
      insertToken: db.prepare(
        "INSERT INTO tokens (id, network, hash, uses, expires_at, created_at, role) VALUES (@id, @network, @hash, @uses, @expiresAt, @createdAt, @role)",
      ),
      tokenByHash: db.prepare<[string], TokenRecordRow>(
        "SELECT id, network, hash, uses, expires_at, created_at, role FROM tokens WHERE hash = ?",
      ),
      useToken: db.prepare<[string]>("UPDATE tokens SET uses = uses - 1 WHERE id = ?"),
      peer: db.prepare<[string, string], { record: string }>(
        "SELECT record FROM peers WHERE network = ? AND id = ?",
      ),
      peers: db.prepare<[string], { record: string }>(
        "SELECT record FROM peers WHERE network = ? ORDER BY address",
      ),
      roster: db.prepare<[string], RosterRow>("SELECT id, address, record FROM peers WHERE network = ?"),
      addresses: db.prepare<[string], { address: string }>("SELECT address FROM peers WHERE network = ?"),
      clash: db.prepare<[string, string, string, string], { id: string }>(
        "SELECT id FROM peers WHERE network = ? AND id != ? AND (name = ? OR wg_key = ?)",
      ),
      insertPeer: db.prepare(
        "INSERT INTO peers (network, id, name, wg_key, address, record) VALUES (@network, @id, @name, @wgPublicKey, @address, @record)",
      ),
      updatePeer: db.prepare(
        "UPDATE peers SET name = @name, wg_key = @wgPublicKey, record = @record WHERE network = @network AND id = @id",
      ),
      deletePeer: db.prepare<[string, string]>("DELETE FROM peers WHERE network = ? AND id = ?"),
      countPeers: db.prepare<[], { network: string; n: number }>(
        "SELECT network, count(*) AS n FROM peers GROUP BY network",
      ),
      insertEvent: db.prepare(
        "INSERT INTO events (network, sender, recipient, ts, data) VALUES (@network, @from, @to, @ts, @data)",
      ),
      eventsAfter: db.prepare<[string, number, string, string, number], EventRow>(
        `SELECT id, data FROM events WHERE network = ? AND id > ?
           AND (recipient IS NULL OR recipient = ?) AND sender != ? ORDER BY id LIMIT ?`,
      ),
      lastEventId: db.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'events'"),
      prunedThrough: db.prepare<[string], { pruned_through: number }>(
        "SELECT pruned_through FROM networks WHERE name = ?",
      ),
      oldBefore: db.prepare<[string, number], { id: number | null }>(
        "SELECT max(id) AS id FROM events WHERE network = ? AND ts < ?",
      ),
      beyondCount: db.prepare<[string, number], { id: number }>(
        "SELECT id FROM events WHERE network = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
      ),
      deleteEvents: db.prepare<[string, number]>("DELETE FROM events WHERE network = ? AND id <= ?"),
      setPruned: db.prepare<[number, string]>(
        "UPDATE networks SET pruned_through = max(pruned_through, ?) WHERE name = ?",
      ),
      useNonce: db.prepare<[string, number]>("INSERT OR IGNORE INTO nonces (key, expires_at) VALUES (?, ?)"),
      pruneNonces: db.prepare<[number]>("DELETE FROM nonces WHERE expires_at < ?"),
      upsertPath: db.prepare(PATH_SQL.upsert),
      paths: db.prepare<[Record<string, unknown>], PathRow>(PATH_SQL.list),
      dropPaths: db.prepare(PATH_SQL.dropPeer),
      insertViewer: db.prepare(PATH_SQL.insertViewer),
      viewerByHash: db.prepare<[Record<string, unknown>], ViewerTokenRow>(PATH_SQL.viewerByHash),
    };
  }

  // The Store contract is asynchronous for the sake of networked databases;
  // here every call completes before the promise is even returned.

  async createNetwork(n: Network): Promise<void> {
    try {
      this.stmt.insertNetwork.run({ ...n, cidr6: n.cidr6 ?? null });
    } catch (e) {
      if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
        throw new ScopeError("conflict", `network ${n.name} exists`);
      }
      throw e;
    }
  }

  async getNetwork(name: string): Promise<Network | undefined> {
    const r = this.stmt.network.get(name);
    return r && toNetwork(r);
  }

  async listNetworks(): Promise<Network[]> {
    return this.stmt.networks.all().map(toNetwork);
  }

  async createToken(t: TokenRecord): Promise<void> {
    this.stmt.insertToken.run(t);
  }

  async tokenByHash(hash: string): Promise<TokenRecord | undefined> {
    const r = this.stmt.tokenByHash.get(hash);
    return r && toTokenRecord(r);
  }

  async join(c: JoinCommit): Promise<JoinOutcome> {
    const committed = this.db
      .transaction((): Omit<JoinOutcome, "peersJson"> & { record: string | undefined } => {
        const network = this.requireNetwork(c.network);
        const token = checkJoinToken(this.stmt.tokenByHash.get(c.tokenHash), c);
        const clash = this.stmt.clash.get(c.network, c.peerId, c.peer.name, c.peer.wgPublicKey);
        if (clash)
          throw new ScopeError("conflict", `peer ${clash.id} already has this name or WireGuard key`);

        const existing = this.peerOrUndefined(c.network, c.peerId);
        let self: Peer;
        let record: string | undefined;
        let event: StoredEvent | undefined;
        if (existing) {
          // Re-join: same id and address; a change of details is an update, a retry is a no-op.
          const changed = rejoined(existing, c, token.role);
          self = changed ?? existing;
          if (changed) {
            record = JSON.stringify(self);
            this.stmt.updatePeer.run({ ...self, network: c.network, record });
            event = this.insertEvent(registryEvent("peerUpdate", c.network, c.now, self));
          }
        } else {
          if (token.uses <= 0) throw new ScopeError("token_invalid", "join token used up");
          const taken = new Set(this.stmt.addresses.all(c.network).map((r) => r.address));
          const address = allocateIpv4(network.cidr, taken);
          if (!address) throw new ScopeError("address_exhausted", `no free address left in ${network.cidr}`);
          this.stmt.useToken.run(token.id);
          self = newPeer(c, network, address, token.role);
          record = JSON.stringify(self);
          this.stmt.insertPeer.run({ ...self, network: c.network, record });
          event = this.insertEvent(registryEvent("peerJoin", c.network, c.now, self));
        }
        return { self, record, network, event, lastEventId: this.lastId() };
      })
      .immediate();
    const { record, ...outcome } = committed;
    if (record !== undefined)
      this.rosterIfLoaded(c.network)?.set({ id: c.peerId, address: outcome.self.address, record });
    // Fan out before the O(peers) list below: the event must not wait for the joiner's peer list.
    this.emit(outcome.event);
    // Same tick as the commit, so the list matches lastEventId exactly (nothing can interleave).
    return { ...outcome, peersJson: this.roster(c.network).json(c.peerId) };
  }

  async getPeer(network: string, id: string): Promise<Peer | undefined> {
    return this.peerOrUndefined(network, id);
  }

  async listPeers(network: string): Promise<Peer[]> {
    this.requireNetwork(network);
    return this.stmt.peers.all(network).map((r) => JSON.parse(r.record) as Peer);
  }

  async listPeersJson(network: string): Promise<string> {
    this.requireNetwork(network);
    return this.roster(network).json();
  }

  async countPeers(): Promise<Map<string, number>> {
    return new Map(this.stmt.countPeers.all().map((r) => [r.network, r.n]));
  }

  async updatePeer(network: string, id: string, update: PeerUpdate | PeerAdminUpdate, now: number) {
    const committed = this.db
      .transaction(() => {
        const existing = this.peerOrUndefined(network, id);
        if (!existing) throw new ScopeError("not_found", `no peer ${id} in ${network}`);
        const peer: Peer = { ...existing, ...update, updatedAt: now };
        const record = JSON.stringify(peer);
        this.stmt.updatePeer.run({ ...peer, network, record });
        return { peer, record, event: this.insertEvent(registryEvent("peerUpdate", network, now, peer)) };
      })
      .immediate();
    const { record, ...out } = committed;
    this.rosterIfLoaded(network)?.set({ id, address: out.peer.address, record });
    this.emit(out.event);
    return out;
  }

  async removePeer(network: string, id: string, reason: "left" | "removed", now: number) {
    const event = this.db
      .transaction(() => {
        if (this.stmt.deletePeer.run(network, id).changes === 0) return undefined;
        this.stmt.dropPaths.run(numbered(network, id));
        return this.insertEvent(registryEvent("peerLeave", network, now, { peerId: id, reason }));
      })
      .immediate();
    if (event) this.rosterIfLoaded(network)?.delete(id);
    this.emit(event);
    return event;
  }

  async appendEvent(draft: EventDraft): Promise<StoredEvent> {
    const e = this.db.transaction(() => this.insertEvent(draft)).immediate();
    this.emit(e);
    return e;
  }

  async eventsAfter(q: EventQuery): Promise<StoredEvent[]> {
    return this.stmt.eventsAfter.all(q.network, q.after, q.viewer, q.viewer, q.limit).map(withId);
  }

  async lastEventId(): Promise<number> {
    return this.lastId();
  }

  async prunedThrough(network: string): Promise<number> {
    return this.stmt.prunedThrough.get(network)?.pruned_through ?? 0;
  }

  async pruneEvents(policy: RetentionPolicy, now: number): Promise<number> {
    return this.db.transaction(() => {
      let dropped = 0;
      for (const { name } of this.stmt.networks.all()) {
        const byAge = this.stmt.oldBefore.get(name, now - policy.maxAgeMs)?.id ?? 0;
        const byCount = this.stmt.beyondCount.get(name, policy.maxPerNetwork)?.id ?? 0;
        const cut = Math.max(byAge, byCount);
        if (cut === 0) continue;
        dropped += this.stmt.deleteEvents.run(name, cut).changes;
        this.stmt.setPruned.run(cut, name);
      }
      return dropped;
    })();
  }

  onEvent(listener: (e: StoredEvent) => void): void {
    this.listeners.push(listener);
  }

  async createViewerToken(t: ViewerTokenRecord): Promise<void> {
    this.stmt.insertViewer.run(numbered(t.id, t.network, t.hash, t.expiresAt, t.createdAt));
  }

  async viewerTokenByHash(hash: string): Promise<ViewerTokenRecord | undefined> {
    const r = this.stmt.viewerByHash.get(numbered(hash));
    return r && toViewerToken(r);
  }

  async reportPaths(network: string, reporter: string, views: readonly PathView[], now: number) {
    this.db.transaction(() => {
      for (const v of views) {
        const r = pathRowOf(reporter, v, now);
        this.stmt.upsertPath.run(numbered(network, r.reporter, r.peer, r.data, r.reported_at));
      }
    })();
  }

  async listPaths(network: string): Promise<PathRecord[]> {
    return this.stmt.paths.all(numbered(network)).map(toPathRecord);
  }

  async useNonce(key: string, expiresAt: number): Promise<boolean> {
    return this.stmt.useNonce.run(key, expiresAt).changes === 1;
  }

  async pruneNonces(now: number): Promise<number> {
    return this.stmt.pruneNonces.run(now).changes;
  }

  close(): void {
    this.db.close();
  }

  // ---- inside transactions ----

  private requireNetwork(name: string): Network {
    const r = this.stmt.network.get(name);
    if (!r) throw new ScopeError("not_found", `no network ${name}`);
    return toNetwork(r);
  }

  private peerOrUndefined(network: string, id: string): Peer | undefined {
    const r = this.stmt.peer.get(network, id);
    return r && (JSON.parse(r.record) as Peer);
  }

  private roster(network: string): Roster {
    let r = this.rosters.get(network);
    if (!r) {
      r = new Roster(new Map(this.stmt.roster.all(network).map((row) => [row.id, row])));
      this.rosters.set(network, r);
    }
    return r;
  }

  /** After a commit: a roster not loaded yet will read the committed rows when first needed. */
  private rosterIfLoaded(network: string): Roster | undefined {
    return this.rosters.get(network);
  }

  private lastId(): number {
    return this.stmt.lastEventId.get()?.seq ?? 0;
  }

  private insertEvent(draft: EventDraft): StoredEvent {
    const data = JSON.stringify(draft);
    const id = Number(
      this.stmt.insertEvent.run({
        network: draft.network,
        from: draft.from,
        to: draft.to ?? null,
        ts: draft.ts,
        data,
      }).lastInsertRowid,
    );
    return withId({ id, data });
  }

  private emit(e: StoredEvent | undefined): void {
    if (e) for (const l of this.listeners) l(e);
  }
}
