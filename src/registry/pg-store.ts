/**
 * The Store on PostgreSQL, for several registry replicas on one database.
 *
 * Correctness across replicas comes from the database alone: every write
 * that touches a network first locks that network's row (SELECT … FOR
 * UPDATE, or the counter UPDATE), so a network's joins, updates and events
 * are serialized by PostgreSQL, whichever replica runs them; IPAM, names and
 * keys are also UNIQUE constraints, token uses a CHECK, nonces a primary key.
 * Nothing in this process's memory is a source of truth.
 *
 * Event order: ids come from the network's counter row, bumped in the event's
 * own transaction. The row lock makes a second writer wait for the first to
 * commit, so ids commit in id order without gaps, and a reader resuming with
 * `id > last` cannot skip an id that commits late (as it could with a
 * sequence).
 *
 * Fan-out: each event transaction notifies CHANNEL with its network. A
 * replica's pump then reads that network's events after the last one it
 * emitted, in id order, and hands them to onEvent: every replica emits every
 * event once, in order, whichever replica wrote it. The notification is only
 * a wake-up; after a lost LISTEN connection the pump catches up on every
 * network, so a database restart loses nothing.
 */
import type pg from "pg";
import { ScopeError } from "../core/errors.js";
import type { LogSink } from "../core/logger.js";
import type { Network, PathRecord, PathView, Peer, PeerAdminUpdate, PeerUpdate } from "../core/protocol.js";
import { allocateIpv4 } from "./ipam.js";
import { CHANNEL, Listener, createPool, migratePg, query, transaction, type Db } from "./pg-db.js";
import {
  checkJoinToken,
  newPeer,
  registryEvent,
  rejoined,
  toNetwork,
  withId,
  type EventRow,
  type NetworkRow,
  type TokenRow,
  type TokenRecordRow,
  toTokenRecord,
  PATH_SQL,
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

const PUMP_PAGE = 1000;
const PUMP_RETRY_MS = 500;
/** Peers of a network but one, as the JSON array text of their records, by address (byte order, like SQLite). */
const PEERS_JSON = `SELECT '[' || coalesce(string_agg(record, ',' ORDER BY address COLLATE "C"), '') || ']' AS json
  FROM peers WHERE network = $1 AND id <> $2`;

/**
 * Gives the draft the network's next id and stores it, in the caller's
 * transaction (which then holds the network's counter row until it ends).
 */
export async function insertEvent(db: Db, draft: EventDraft): Promise<StoredEvent> {
  const data = JSON.stringify(draft);
  const r = await db.query<{ id: number }>(
    `WITH n AS (UPDATE networks SET last_event = last_event + 1 WHERE name = $1 RETURNING last_event)
     INSERT INTO events (network, id, sender, recipient, ts, data)
       SELECT $1, last_event, $2, $3, $4, $5 FROM n
     RETURNING id, pg_notify('${CHANNEL}', network)`,
    [draft.network, draft.from, draft.to ?? null, draft.ts, data],
  );
  const id = r.rows[0]?.id;
  if (id === undefined) throw new ScopeError("not_found", `no network ${draft.network}`);
  return withId({ id, data });
}

async function lockNetwork(db: Db, name: string): Promise<Network> {
  const r = await db.query<NetworkRow>("SELECT * FROM networks WHERE name = $1 FOR UPDATE", [name]);
  const row = r.rows[0];
  if (!row) throw new ScopeError("not_found", `no network ${name}`);
  return toNetwork(row);
}

const PEER = "SELECT record FROM peers WHERE network = $1 AND id = $2";

async function peerIn(db: Db, network: string, id: string): Promise<Peer | undefined> {
  const r = await db.query<{ record: string }>(PEER, [network, id]);
  const row = r.rows[0];
  return row && (JSON.parse(row.record) as Peer);
}

async function writePeer(db: Db, network: string, self: Peer, insert: boolean): Promise<void> {
  const record = JSON.stringify(self);
  await db.query(
    insert
      ? "INSERT INTO peers (network, id, name, wg_key, address, record) VALUES ($1, $2, $3, $4, $5, $6)"
      : "UPDATE peers SET name = $3, wg_key = $4, record = $6 WHERE network = $1 AND id = $2 AND address = $5",
    [network, self.id, self.name, self.wgPublicKey, self.address, record],
  );
}

export class PgStore implements Store {
  private readonly listeners: ((e: StoredEvent) => void)[] = [];
  /** Highest id handed to the listeners, per network. */
  private readonly emitted = new Map<string, number>();
  private readonly pumps = new Map<string, { again: boolean; done: Promise<void> }>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private closed = false;

  private readonly listener: Listener | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    listenUrl: string | undefined,
    private readonly log: LogSink,
  ) {
    this.listener =
      listenUrl === undefined
        ? undefined
        : new Listener(
            listenUrl,
            log,
            (network) => void this.wake(network),
            () => this.catchUp(),
          );
  }

  /** Connects, migrates, and listens for events; `listen: false` for tools that only read and write (migrate). */
  static async open(url: string, log: LogSink, opts: { listen?: boolean } = {}): Promise<PgStore> {
    const pool = createPool(url, log);
    try {
      await migratePg(pool);
      const store = new PgStore(pool, opts.listen === false ? undefined : url, log);
      // From here on, only events committed later are news; the history is replayed by streams.
      const rows = await query<{ name: string; last_event: number }>(
        pool,
        "SELECT name, last_event FROM networks",
      );
      for (const r of rows.rows) store.emitted.set(r.name, r.last_event);
      await store.listener?.start();
      return store;
    } catch (e) {
      await pool.end().catch(() => {});
      throw e;
    }
  }

  async createNetwork(n: Network): Promise<void> {
    try {
      await query(
        this.pool,
        "INSERT INTO networks (name, cidr, cidr6, topology, created_at) VALUES ($1, $2, $3, $4, $5)",
        [n.name, n.cidr, n.cidr6 ?? null, n.topology, n.createdAt],
      );
    } catch (e) {
      if ((e as { code?: string }).code === "23505")
        throw new ScopeError("conflict", `network ${n.name} exists`);
      throw e;
    }
  }

  async getNetwork(name: string): Promise<Network | undefined> {
    const r = await query<NetworkRow>(this.pool, "SELECT * FROM networks WHERE name = $1", [name]);
    return r.rows[0] && toNetwork(r.rows[0]);
  }

  async listNetworks(): Promise<Network[]> {
    return (await query<NetworkRow>(this.pool, 'SELECT * FROM networks ORDER BY name COLLATE "C"')).rows.map(
      toNetwork,
    );
  }

  async createToken(t: TokenRecord): Promise<void> {
    await query(
      this.pool,
      "INSERT INTO tokens (id, network, hash, uses, expires_at, created_at, role) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      [t.id, t.network, t.hash, t.uses, t.expiresAt, t.createdAt, t.role],
    );
  }

  async tokenByHash(hash: string): Promise<TokenRecord | undefined> {
    const r = await query<TokenRecordRow>(
      this.pool,
      "SELECT id, network, hash, uses, expires_at, created_at, role FROM tokens WHERE hash = $1",
      [hash],
    );
    return r.rows[0] && toTokenRecord(r.rows[0]);
  }

  async join(c: JoinCommit): Promise<JoinOutcome> {
    const out = await transaction(this.pool, async (db) => {
      const network = await lockNetwork(db, c.network);
      const tokens = await db.query<TokenRow>(
        "SELECT id, network, uses, expires_at, role FROM tokens WHERE hash = $1",
        [c.tokenHash],
      );
      const token = checkJoinToken(tokens.rows[0], c);
      const clash = await db.query<{ id: string }>(
        "SELECT id FROM peers WHERE network = $1 AND id <> $2 AND (name = $3 OR wg_key = $4) LIMIT 1",
        [c.network, c.peerId, c.peer.name, c.peer.wgPublicKey],
      );
      if (clash.rows[0])
        throw new ScopeError("conflict", `peer ${clash.rows[0].id} already has this name or WireGuard key`);

      const existing = await peerIn(db, c.network, c.peerId);
      let self: Peer;
      let event: StoredEvent | undefined;
      if (existing) {
        // Re-join: same id and address; a change of details is an update, a retry is a no-op.
        const changed = rejoined(existing, c, token.role);
        self = changed ?? existing;
        if (changed) {
          await writePeer(db, c.network, self, false);
          event = await insertEvent(db, registryEvent("peerUpdate", c.network, c.now, self));
        }
      } else {
        const used = await db.query("UPDATE tokens SET uses = uses - 1 WHERE id = $1 AND uses > 0", [
          token.id,
        ]);
        if (used.rowCount !== 1) throw new ScopeError("token_invalid", "join token used up");
        const taken = await db.query<{ address: string }>("SELECT address FROM peers WHERE network = $1", [
          c.network,
        ]);
        const address = allocateIpv4(network.cidr, new Set(taken.rows.map((r) => r.address)));
        if (!address) throw new ScopeError("address_exhausted", `no free address left in ${network.cidr}`);
        self = newPeer(c, network, address, token.role);
        await writePeer(db, c.network, self, true);
        event = await insertEvent(db, registryEvent("peerJoin", c.network, c.now, self));
      }
      // Still under the network's lock: the list and the id describe the same moment.
      const peers = await db.query<{ json: string }>(PEERS_JSON, [c.network, c.peerId]);
      const last = await db.query<{ last_event: number }>("SELECT last_event FROM networks WHERE name = $1", [
        c.network,
      ]);
      return {
        self,
        network,
        event,
        peersJson: peers.rows[0]?.json ?? "[]",
        lastEventId: last.rows[0]?.last_event ?? 0,
      };
    });
    if (out.event) await this.wake(c.network);
    return out;
  }

  async getPeer(network: string, id: string): Promise<Peer | undefined> {
    const row = (await query<{ record: string }>(this.pool, PEER, [network, id])).rows[0];
    return row && (JSON.parse(row.record) as Peer);
  }

  async listPeers(network: string): Promise<Peer[]> {
    await this.requireNetwork(network);
    const r = await query<{ record: string }>(
      this.pool,
      'SELECT record FROM peers WHERE network = $1 ORDER BY address COLLATE "C"',
      [network],
    );
    return r.rows.map((row) => JSON.parse(row.record) as Peer);
  }

  async listPeersJson(network: string): Promise<string> {
    await this.requireNetwork(network);
    return (await query<{ json: string }>(this.pool, PEERS_JSON, [network, ""])).rows[0]?.json ?? "[]";
  }

  async countPeers(): Promise<Map<string, number>> {
    const r = await query<{ network: string; n: number }>(
      this.pool,
      "SELECT network, count(*)::int AS n FROM peers GROUP BY network",
    );
    return new Map(r.rows.map((row) => [row.network, row.n]));
  }

  async updatePeer(network: string, id: string, update: PeerUpdate | PeerAdminUpdate, now: number) {
    const out = await transaction(this.pool, async (db) => {
      await lockNetwork(db, network);
      const existing = await peerIn(db, network, id);
      if (!existing) throw new ScopeError("not_found", `no peer ${id} in ${network}`);
      const peer: Peer = { ...existing, ...update, updatedAt: now };
      await writePeer(db, network, peer, false);
      return { peer, event: await insertEvent(db, registryEvent("peerUpdate", network, now, peer)) };
    });
    await this.wake(network);
    return out;
  }

  async removePeer(network: string, id: string, reason: "left" | "removed", now: number) {
    const event = await transaction(this.pool, async (db) => {
      await lockNetwork(db, network);
      const gone = await db.query("DELETE FROM peers WHERE network = $1 AND id = $2", [network, id]);
      if (gone.rowCount === 0) return undefined;
      await db.query(PATH_SQL.dropPeer, [network, id]);
      return insertEvent(db, registryEvent("peerLeave", network, now, { peerId: id, reason }));
    });
    if (event) await this.wake(network);
    return event;
  }

  async appendEvent(draft: EventDraft): Promise<StoredEvent> {
    const e = await transaction(this.pool, (db) => insertEvent(db, draft));
    await this.wake(draft.network);
    return e;
  }

  async eventsAfter(q: EventQuery): Promise<StoredEvent[]> {
    const r = await query<EventRow>(
      this.pool,
      `SELECT id, data FROM events WHERE network = $1 AND id > $2
         AND (recipient IS NULL OR recipient = $3) AND sender <> $3 ORDER BY id LIMIT $4`,
      [q.network, q.after, q.viewer, q.limit],
    );
    return r.rows.map(withId);
  }

  async lastEventId(network?: string): Promise<number> {
    const r =
      network === undefined
        ? await query<{ id: number }>(
            this.pool,
            "SELECT coalesce(max(last_event), 0)::bigint AS id FROM networks",
          )
        : await query<{ id: number }>(this.pool, "SELECT last_event AS id FROM networks WHERE name = $1", [
            network,
          ]);
    return r.rows[0]?.id ?? 0;
  }

  async prunedThrough(network: string): Promise<number> {
    const r = await query<{ p: number }>(
      this.pool,
      "SELECT pruned_through AS p FROM networks WHERE name = $1",
      [network],
    );
    return r.rows[0]?.p ?? 0;
  }

  /** Replicas may prune at the same time: deletes are idempotent and the watermark only rises. */
  async pruneEvents(policy: RetentionPolicy, now: number): Promise<number> {
    let dropped = 0;
    for (const { name } of await this.listNetworks()) {
      dropped += await transaction(this.pool, async (db) => {
        const cut = await db.query<{ id: number }>(
          `SELECT greatest(
             (SELECT max(id) FROM events WHERE network = $1 AND ts < $2),
             (SELECT id FROM events WHERE network = $1 ORDER BY id DESC LIMIT 1 OFFSET $3), 0) AS id`,
          [name, now - policy.maxAgeMs, policy.maxPerNetwork],
        );
        const id = cut.rows[0]?.id ?? 0;
        if (id === 0) return 0;
        const gone = await db.query("DELETE FROM events WHERE network = $1 AND id <= $2", [name, id]);
        await db.query("UPDATE networks SET pruned_through = greatest(pruned_through, $2) WHERE name = $1", [
          name,
          id,
        ]);
        return gone.rowCount ?? 0;
      });
    }
    return dropped;
  }

  onEvent(listener: (e: StoredEvent) => void): void {
    this.listeners.push(listener);
  }

  async createViewerToken(t: ViewerTokenRecord): Promise<void> {
    await query(this.pool, PATH_SQL.insertViewer, [t.id, t.network, t.hash, t.expiresAt, t.createdAt]);
  }

  async viewerTokenByHash(hash: string): Promise<ViewerTokenRecord | undefined> {
    const r = await query<ViewerTokenRow>(this.pool, PATH_SQL.viewerByHash, [hash]);
    return r.rows[0] && toViewerToken(r.rows[0]);
  }

  /**
   * Not under the network's lock (a report every few seconds from every peer
   * would queue behind joins): a view racing its peer's removal may outlive
   * it, and readers keep only views between current members.
   */
  async reportPaths(network: string, reporter: string, views: readonly PathView[], now: number) {
    await transaction(this.pool, async (db) => {
      for (const v of views) {
        const r = pathRowOf(reporter, v, now);
        await db.query(PATH_SQL.upsert, [network, r.reporter, r.peer, r.data, r.reported_at]);
      }
    });
  }

  async listPaths(network: string): Promise<PathRecord[]> {
    return (await query<PathRow>(this.pool, PATH_SQL.list, [network])).rows.map(toPathRecord);
  }

  async useNonce(key: string, expiresAt: number): Promise<boolean> {
    const r = await query(
      this.pool,
      "INSERT INTO nonces (key, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
      [key, expiresAt],
    );
    return r.rowCount === 1;
  }

  async pruneNonces(now: number): Promise<number> {
    return (await query(this.pool, "DELETE FROM nonces WHERE expires_at < $1", [now])).rowCount ?? 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.retries) clearTimeout(t);
    await this.listener?.close();
    await Promise.all([...this.pumps.values()].map((p) => p.done));
    await this.pool.end();
  }

  // ---- fan-out ----

  /**
   * Emits the network's events committed after the last one emitted here.
   * One pump per network at a time; a wake-up during a pump makes it read
   * once more. Resolves when the events committed before the call are out.
   */
  private wake(network: string): Promise<void> {
    const running = this.pumps.get(network);
    if (running) {
      running.again = true;
      return running.done;
    }
    const pump = { again: true, done: Promise.resolve() };
    this.pumps.set(network, pump);
    pump.done = (async () => {
      try {
        while (pump.again && !this.closed) {
          pump.again = false;
          await this.drain(network);
        }
      } catch (e) {
        // The commit stands; its event goes out when the database answers again.
        this.log.warn("event fan-out read failed; retrying", { network, err: (e as Error).message });
        this.retryLater(network);
      } finally {
        this.pumps.delete(network);
      }
    })();
    return pump.done;
  }

  private async drain(network: string): Promise<void> {
    for (;;) {
      const after = this.emitted.get(network) ?? 0;
      const r = await this.pool.query<EventRow>(
        "SELECT id, data FROM events WHERE network = $1 AND id > $2 ORDER BY id LIMIT $3",
        [network, after, PUMP_PAGE],
      );
      for (const row of r.rows) {
        this.emitted.set(network, row.id);
        const e = withId(row);
        for (const l of this.listeners) l(e);
      }
      if (r.rows.length < PUMP_PAGE) return;
    }
  }

  private retryLater(network: string): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.retries.delete(t);
      void this.wake(network);
    }, PUMP_RETRY_MS);
    this.retries.add(t);
  }

  /** After (re)connecting the listener: anything committed while not listening. */
  private async catchUp(): Promise<void> {
    try {
      const r = await this.pool.query<{ name: string }>("SELECT name FROM networks");
      for (const { name } of r.rows) void this.wake(name);
    } catch (e) {
      this.log.warn("event catch-up failed; retrying", { err: (e as Error).message });
      if (this.closed) return;
      const t = setTimeout(() => {
        this.retries.delete(t);
        void this.catchUp();
      }, PUMP_RETRY_MS);
      this.retries.add(t);
    }
  }

  private async requireNetwork(name: string): Promise<void> {
    if (!(await this.getNetwork(name))) throw new ScopeError("not_found", `no network ${name}`);
  }
}
