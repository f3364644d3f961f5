/**
 * PostgreSQL plumbing for PgStore: the pool, schema migrations that several
 * replicas may start at once, transactions retried over a database restart,
 * and the LISTEN connection that wakes a replica when any replica commits an
 * event.
 */
import pg from "pg";
import { ScopeError, isScopeError } from "../core/errors.js";
import type { LogSink } from "../core/logger.js";
import { PATHS_DDL } from "./store-common.js";

export type Db = pg.ClientBase;

/** The channel every event transaction notifies on, with its network as payload. */
export const CHANNEL = "scope_events";
/** pg_advisory_xact_lock key held while migrating: replicas starting together run them once. */
const MIGRATION_LOCK = 0x5c09e15;
/** How long a request may wait for the database to come back before it is answered 503. */
const RETRY_BUDGET_MS = 15_000;

/** Index = version reached after running it. Append only: released databases have run the earlier ones. */
export const PG_MIGRATIONS: readonly string[] = [
  `CREATE TABLE networks (
     name TEXT PRIMARY KEY, cidr TEXT NOT NULL, cidr6 TEXT, topology TEXT NOT NULL, created_at BIGINT NOT NULL,
     -- The network's event counter: bumped in the transaction that inserts the event, so the row lock
     -- orders a network's event transactions and ids commit in id order, without gaps.
     last_event BIGINT NOT NULL DEFAULT 0,
     pruned_through BIGINT NOT NULL DEFAULT 0);
   CREATE TABLE tokens (
     id TEXT PRIMARY KEY, network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE,
     hash TEXT NOT NULL UNIQUE, uses INTEGER NOT NULL CHECK (uses >= 0),
     expires_at BIGINT NOT NULL, created_at BIGINT NOT NULL);
   CREATE TABLE peers (
     network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE, id TEXT NOT NULL,
     name TEXT NOT NULL, wg_key TEXT NOT NULL, address TEXT NOT NULL, record TEXT NOT NULL,
     PRIMARY KEY (network, id), UNIQUE (network, address), UNIQUE (network, name), UNIQUE (network, wg_key));
   CREATE TABLE events (
     network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE, id BIGINT NOT NULL,
     sender TEXT NOT NULL, recipient TEXT, ts BIGINT NOT NULL, data TEXT NOT NULL,
     PRIMARY KEY (network, id));
   CREATE TABLE nonces (key TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);
   CREATE INDEX nonces_by_expiry ON nonces (expires_at);`,
  // v2: hub tokens (roles are the admin's word, never the member's), as SQLite's v3.
  `ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'edge';`,
  // v3: path reports and viewer tokens for the web view (issue 16), as SQLite's v4.
  PATHS_DDL,
];

/** BIGINT columns as numbers: ids and millisecond times stay far below 2^53. */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

export const clientConfig = (url: string): pg.ClientConfig => ({
  connectionString: url,
  types,
  connectionTimeoutMillis: 5000,
  application_name: "scope-registry",
});

export function createPool(url: string, log: LogSink): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(url), max: 10 });
  // An idle client losing its server (a restart) emits here; unhandled, it would end the process.
  pool.on("error", (e) => log.warn("database connection lost", { err: e.message }));
  return pool;
}

/** Runs the migrations the database lacks, under an advisory lock; refuses a newer schema. */
export async function migratePg(pool: pg.Pool, migrations: readonly string[] = PG_MIGRATIONS): Promise<void> {
  await transaction(pool, async (db) => {
    await db.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await db.query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const row = (await db.query<{ version: number }>("SELECT version FROM schema_version")).rows[0];
    if (!row) await db.query("INSERT INTO schema_version VALUES (0)");
    const current = row?.version ?? 0;
    if (current > migrations.length) {
      throw new ScopeError(
        "config",
        `database schema v${current} is newer than this registry (v${migrations.length})`,
      );
    }
    for (let v = current; v < migrations.length; v++) await db.query(migrations[v] ?? "");
    await db.query("UPDATE schema_version SET version = $1", [migrations.length]);
  });
}

const TRANSIENT_SQLSTATE = new Set(["40001", "40P01", "57P01", "57P02", "57P03", "53300"]);

/** A failure that a later attempt may not meet: lost connection, server restarting, deadlock, serialization. */
export function isTransient(e: unknown): boolean {
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (TRANSIENT_SQLSTATE.has(code) || code.startsWith("08"))) return true;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return true; // ECONNREFUSED, ECONNRESET, ENOENT (socket)
  return (
    typeof message === "string" &&
    /Connection terminated|timeout exceeded when trying to connect/.test(message)
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One attempt: BEGIN, fn, COMMIT; a failure rolls back (or drops a broken connection). */
async function attempt<T>(pool: pg.Pool, fn: (db: Db) => Promise<T>, state: { committing: boolean }) {
  const db = await pool.connect();
  // A checked-out client whose server goes away between two statements emits "error"; unhandled,
  // that ends the process. The next statement fails with it anyway, which is where it is handled.
  const ignore = () => {};
  db.on("error", ignore);
  try {
    await db.query("BEGIN");
    const out = await fn(db);
    state.committing = true;
    await db.query("COMMIT");
    db.off("error", ignore);
    db.release();
    return out;
  } catch (e) {
    if (isTransient(e)) db.release(true);
    else {
      await db.query("ROLLBACK").catch(() => {});
      db.off("error", ignore);
      db.release();
    }
    throw e;
  }
}

/**
 * fn in one transaction, retried on a transient failure until RETRY_BUDGET_MS:
 * a database restart delays requests instead of failing them. A connection
 * lost during COMMIT is not retried (the commit may have happened): 503.
 */
export async function transaction<T>(pool: pg.Pool, fn: (db: Db) => Promise<T>): Promise<T> {
  const start = Date.now();
  for (let n = 0; ; n++) {
    const state = { committing: false };
    try {
      return await attempt(pool, fn, state);
    } catch (e) {
      if (isScopeError(e) || !isTransient(e)) throw e;
      if (
        (state.committing && !/^40/.test(String((e as { code?: unknown }).code))) ||
        Date.now() - start > RETRY_BUDGET_MS
      )
        throw new ScopeError("unavailable", "database unavailable, try again", { cause: e });
      await sleep(Math.min(50 * 2 ** n, 1000));
    }
  }
}

/** One statement outside a transaction (a read, or a single idempotent write), retried like transaction. */
export async function query<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult<R>> {
  const start = Date.now();
  for (let n = 0; ; n++) {
    try {
      return await pool.query<R>(sql, params);
    } catch (e) {
      if (!isTransient(e)) throw e;
      if (Date.now() - start > RETRY_BUDGET_MS)
        throw new ScopeError("unavailable", "database unavailable, try again", { cause: e });
      await sleep(Math.min(50 * 2 ** n, 1000));
    }
  }
}

/**
 * The LISTEN connection: reports each notification's payload, and calls
 * onConnect after every (re)connect so the caller can catch up on whatever
 * was committed while nobody listened. Reconnects with backoff until closed.
 */
export class Listener {
  private client: pg.Client | undefined;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly log: LogSink,
    private readonly onPayload: (payload: string) => void,
    private readonly onConnect: () => Promise<void>,
  ) {}

  /** Resolves once listening for the first time (or throws if the database cannot be reached). */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(clientConfig(this.url));
    // Only the connection in use reconnects: a failed attempt is the retry loop's to handle.
    const onLost = (e?: Error) => {
      if (this.client !== client || this.closed) return;
      this.client = undefined;
      this.log.warn("event listener lost the database; reconnecting", { err: e?.message ?? "ended" });
      void client.end().catch(() => {});
      void this.reconnect();
    };
    client.on("error", onLost);
    client.on("end", () => onLost());
    client.on("notification", (m) => m.payload && this.onPayload(m.payload));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      void client.end().catch(() => {});
      throw e;
    }
    this.client = client;
    await this.onConnect();
  }

  private async reconnect(): Promise<void> {
    for (let n = 0; !this.closed; n++) {
      await sleep(Math.min(100 * 2 ** n, 2000));
      try {
        await this.connect();
        this.log.info("event listener reconnected");
        return;
      } catch {
        // still down: back off and try again
      }
    }
  }
}
