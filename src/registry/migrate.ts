/**
 * `scope registry migrate`: copies a single-host registry's SQLite database
 * into PostgreSQL, in one transaction: networks, tokens (hashes and use
 * counts), peers (records as stored: same ids and addresses), events (same
 * ids, so a daemon's Last-Event-ID stays valid), unexpired nonces, and the
 * web view's viewer tokens and path reports (issue 16).
 *
 * SQLite numbers events over the whole registry, PostgreSQL per network:
 * every network's counter starts at SQLite's last id, so new ids are higher
 * than any a daemon has seen, in every network.
 */
import Database from "better-sqlite3";
import { ScopeError } from "../core/errors.js";
import type { LogSink } from "../core/logger.js";
import { createPool, migratePg, transaction, type Db } from "./pg-db.js";

export interface MigrateCounts {
  networks: number;
  tokens: number;
  peers: number;
  events: number;
  viewerTokens: number;
  paths: number;
}

type Row = Record<string, unknown>;

/** Inserts rows in batches of one multi-row INSERT each (10 000 peers: 20 statements, not 10 000). */
async function copyRows(db: Db, table: string, columns: string[], rows: Row[], suffix = ""): Promise<void> {
  const BATCH = 500;
  for (let i = 0; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH);
    const params: unknown[] = [];
    const tuples = batch.map((r) => {
      const slots = columns.map((c) => {
        params.push(r[c] ?? null);
        return `$${params.length}`;
      });
      return `(${slots.join(", ")})`;
    });
    await db.query(
      `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${tuples.join(", ")} ${suffix}`,
      params,
    );
  }
}

export async function migrateSqliteToPg(
  sqliteFile: string,
  pgUrl: string,
  log: LogSink,
  now: number,
): Promise<MigrateCounts> {
  let src: Database.Database;
  try {
    src = new Database(sqliteFile, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw new ScopeError("usage", `${sqliteFile}: cannot open the SQLite registry (${(e as Error).message})`);
  }
  const pool = createPool(pgUrl, log);
  try {
    const all = (sql: string, ...p: unknown[]) => src.prepare(sql).all(...p) as Row[];
    const last = (
      src.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as Row | undefined
    )?.seq;
    const networks: Row[] = all("SELECT * FROM networks").map((n) => ({ ...n, last_event: last ?? 0 }));
    const tokens = all("SELECT * FROM tokens");
    const peers = all("SELECT * FROM peers");
    const events = all("SELECT * FROM events ORDER BY id");
    const nonces = all("SELECT * FROM nonces WHERE expires_at >= ?", now);
    const viewerTokens = all("SELECT * FROM viewer_tokens");
    const paths = all("SELECT * FROM paths");
    await migratePg(pool);
    await transaction(pool, async (db) => {
      const clash = await db.query<{ name: string }>("SELECT name FROM networks WHERE name = ANY($1)", [
        networks.map((n) => n.name),
      ]);
      if (clash.rows.length)
        throw new ScopeError(
          "conflict",
          `networks already in the target: ${clash.rows.map((r) => r.name).join(", ")}`,
        );
      await copyRows(
        db,
        "networks",
        ["name", "cidr", "cidr6", "topology", "created_at", "last_event", "pruned_through"],
        networks,
      );
      await copyRows(
        db,
        "tokens",
        ["id", "network", "hash", "uses", "expires_at", "created_at", "role"],
        tokens,
      );
      await copyRows(db, "peers", ["network", "id", "name", "wg_key", "address", "record"], peers);
      await copyRows(db, "events", ["network", "id", "sender", "recipient", "ts", "data"], events);
      // Nonces are global: one already there (a replay window shared with the target) is no conflict.
      await copyRows(db, "nonces", ["key", "expires_at"], nonces, "ON CONFLICT DO NOTHING");
      await copyRows(
        db,
        "viewer_tokens",
        ["id", "network", "hash", "expires_at", "created_at"],
        viewerTokens,
      );
      await copyRows(db, "paths", ["network", "reporter", "peer", "data", "reported_at"], paths);
    });
    return {
      networks: networks.length,
      tokens: tokens.length,
      peers: peers.length,
      events: events.length,
      viewerTokens: viewerTokens.length,
      paths: paths.length,
    };
  } finally {
    src.close();
    await pool.end();
  }
}
