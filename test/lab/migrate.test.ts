// Issue 15, acceptance 6, with real daemons: a lab mesh on a single SQLite
// registry; the registry is stopped, `scope registry migrate` moves it into
// PostgreSQL, and a registry on the same host and URL starts on that
// database. The edges' daemons, never restarted and never re-joined, come
// back to it with their ids and addresses, hear of a newcomer that joins
// after the move, and their tunnel loses no ping across it.
//
// PostgreSQL is the registry tier's private cluster (test/registry/pg-server.ts),
// reached over its Unix socket (pg-lab.ts).

import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { skipUnlessLab } from "./lab.js";
import { endPgLab, labDatabase, meshOn, publicHosts, streamOf as of } from "./pg-lab.js";
import { LongPing } from "./checks.js";
import { Scenario } from "./scenario.js";
import { peerNamed, type ScopeStatus } from "./status.js";
import { startPostgres, type PgServer } from "../registry/pg-server.js";

const EDGES = ["a", "b"] as const;

const WORLD = publicHosts(["reg", "a", "b", "c"]);

describe("lab: scope registry migrate, SQLite to PostgreSQL under running daemons", function () {
  this.timeout(240_000);
  let sc: Scenario | undefined;
  let server: PgServer | undefined;
  let db: pg.Client | undefined;
  const tmp = mkdtempSync(join(tmpdir(), "scope-migrate-lab-"));
  // The store the registry is (re)started with: SQLite (none) until the move.
  const registryOpts: { store?: string } = {};

  before(async function () {
    skipUnlessLab(this);
    server = await startPostgres();
    sc = await meshOn(WORLD, "reg", EDGES, registryOpts);
  });

  after(async () => {
    await endPgLab(db, sc, server);
    rmSync(tmp, { recursive: true, force: true });
  });

  it("daemons carry on against the migrated registry with their ids and addresses, without re-joining", async () => {
    const s = sc as Scenario;
    const pgServer = server as PgServer;
    const before = new Map<string, ScopeStatus>();
    for (const h of EDGES) before.set(h, await s.status(h));
    const bAddr = peerNamed(before.get("a") as ScopeStatus, "b")?.address ?? "";
    const longPing = LongPing.start(s.lab, "a", bAddr, 20);

    await s.killRegistry();
    const { url, socketUrl, store } = await labDatabase(pgServer);
    const urlFile = join(tmp, "registry-db.url");
    writeFileSync(urlFile, `${socketUrl}\n`, { mode: 0o600 });
    const counts = JSON.parse(
      await s.scope(undefined, [
        "registry",
        "migrate",
        "--from",
        `sqlite:${s.registryDb}`,
        "--to-file",
        urlFile,
        "--json",
      ]),
    ) as { peers: number };
    expect(counts.peers, "peers moved").to.equal(EDGES.length);
    db = new pg.Client({ connectionString: url });
    await db.connect();
    const moved = Number((await db.query("SELECT max(id) AS m FROM events")).rows[0]?.m);

    registryOpts.store = store;
    await s.startRegistry();
    for (const h of EDGES)
      await s.waitStatus(
        h,
        (st) =>
          of(st).registry === "connected" && of(st).stream.reconnects > of(before.get(h)!).stream.reconnects,
        60_000,
        "back on the migrated registry",
      );

    // A newcomer after the move: the daemons hear of it from the PostgreSQL registry.
    await s.join("c");
    await Promise.all(
      EDGES.map((h) => s.waitStatus(h, (st) => peerNamed(st, "c")?.path === "direct", 30_000, "c direct")),
    );
    const last = Number((await db.query("SELECT max(id) AS m FROM events")).rows[0]?.m);
    for (const h of EDGES) {
      const was = before.get(h) as ScopeStatus;
      const st = await s.waitStatus(h, (x) => of(x).stream.lastEventId >= last, 15_000, `event ${last}`);
      expect([st.self.id, st.self.address], `${h} keeps its id and address`).to.deep.equal([
        was.self.id,
        was.self.address,
      ]);
      expect(of(st).stream.repeated - of(was).stream.repeated, `${h}: events that came twice`).to.equal(0);
    }
    // No re-join: the only peerJoin since the move is c's, and the peer rows are the old ones.
    const joins = await db.query<{ name: string }>(
      `SELECT data::json->'body'->>'name' AS name FROM events
         WHERE network = 'lab' AND id > $1 AND data::json->>'type' = 'cc.ltgc.scope:peerJoin'`,
      [moved],
    );
    expect(joins.rows.map((r) => r.name)).to.deep.equal(["c"]);
    const rows = await db.query<{ id: string; address: string }>(
      "SELECT id, address FROM peers WHERE network = 'lab' AND name = ANY($1) ORDER BY name",
      [[...EDGES]],
    );
    expect(rows.rows.map((r) => [r.id, r.address])).to.deep.equal(
      EDGES.map((h) => [before.get(h)!.self.id, before.get(h)!.self.address]),
    );

    const ping = await longPing.done();
    console.log(`      a → b ping ${ping.received}/${ping.sent} across the move; events ${moved} → ${last}`);
    expect(ping.received, "a → b through the tunnel across the move").to.equal(ping.sent);
  });
});
