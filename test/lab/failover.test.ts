// Issue 15, acceptance 4: two registry replicas on one PostgreSQL, edges
// following replica A (`url = A, B`). A hangs (SIGSTOP: streams open, nothing
// sent) while a peer joins through B, then is SIGKILLed: every edge resumes
// on B within 5 s, handles exactly the events the database holds for it
// since before the hang, each once, and a ping through the tunnel running
// across the whole failover loses nothing. (A SIGKILL alone moves the edges
// in well under 100 ms, too soon for an event to fall in between; the hang
// makes sure the resume on B has events to replay.)
//
// PostgreSQL is the registry tier's private cluster (test/registry/pg-server.ts),
// reached over its Unix socket (pg-lab.ts).

import { expect } from "chai";
import pg from "pg";
import { skipUnlessLab } from "./lab.js";
import { endPgLab, labDatabase, meshOn, publicHosts, streamOf as of } from "./pg-lab.js";
import { LongPing } from "./checks.js";
import { Scenario } from "./scenario.js";
import { peerNamed, type ScopeStatus } from "./status.js";
import { delay } from "./wait.js";
import { startPostgres, type PgServer } from "../registry/pg-server.js";

const EDGES = ["a", "b"] as const;

const WORLD = publicHosts(["rega", "regb", "a", "b", "c"]);

describe("lab: registry replicas on PostgreSQL, the first one SIGKILLed", function () {
  this.timeout(240_000);
  let sc: Scenario | undefined;
  let server: PgServer | undefined;
  let db: pg.Client | undefined;

  before(async function () {
    skipUnlessLab(this);
    server = await startPostgres();
    const { url, store } = await labDatabase(server);
    db = new pg.Client({ connectionString: url });
    await db.connect();
    sc = await meshOn(WORLD, "rega", EDGES, { replicas: ["regb"], store });
  });

  after(() => endPgLab(db, sc, server));

  /** Events of the lab network in (after, upTo] that a stream of `self` carries. */
  const heldFor = async (self: string, after: number, upTo: number): Promise<number> => {
    const r = await (db as pg.Client).query<{ n: string }>(
      `SELECT count(*) AS n FROM events WHERE network = 'lab' AND id > $1 AND id <= $2
         AND (recipient IS NULL OR recipient = $3) AND sender != $3`,
      [after, upTo, self],
    );
    return Number(r.rows[0]?.n);
  };

  /** The newest event of the lab network that a stream of `self` carries. */
  const newestFor = async (self: string): Promise<number> => {
    const r = await (db as pg.Client).query<{ m: string | null }>(
      `SELECT max(id) AS m FROM events WHERE network = 'lab'
         AND (recipient IS NULL OR recipient = $1) AND sender != $1`,
      [self],
    );
    return Number(r.rows[0]?.m ?? 0);
  };

  it("edges resume on B within 5 s with every event once; the tunnel carries on", async () => {
    const s = sc as Scenario;
    const [urlA, urlB] = [s.urlOf("rega"), s.urlOf("regb")];
    const before = new Map<string, ScopeStatus>();
    for (const h of EDGES) {
      const st = await s.status(h);
      expect(of(st).registryUrl, `${h} follows A`).to.equal(urlA);
      before.set(h, st);
    }
    const bAddr = peerNamed(before.get("a") as ScopeStatus, "b")?.address ?? "";
    const longPing = LongPing.start(s.lab, "a", bAddr, 15);
    await delay(1_000);

    // Events A never sends: c joins through B while A hangs.
    process.kill(s.registry?.pid ?? 0, "SIGSTOP");
    await s.join("c", { registryUrl: `${urlB}, ${urlA}` });
    for (const h of EDGES) {
      const st = await s.status(h);
      expect(peerNamed(st, "c"), `${h} heard of c from a hung registry`).to.equal(undefined);
      expect(of(st).registryUrl, `${h} still on A`).to.equal(urlA);
    }
    await s.killRegistry("rega");
    const t0 = Date.now();
    const resumedMs = await Promise.all(
      EDGES.map((h) =>
        s
          .waitStatus(
            h,
            (st) => of(st).registry === "connected" && of(st).registryUrl === urlB,
            15_000,
            "stream on B",
          )
          .then(() => Date.now() - t0),
      ),
    );
    await Promise.all(
      EDGES.map((h) => s.waitStatus(h, (st) => peerNamed(st, "c")?.path === "direct", 30_000, "c direct")),
    );

    // Everything emitted so far for each edge has reached it: then compare with
    // the database. The newest event of all may be one the edge never gets (its
    // own, or one addressed to another peer), so each waits for its own newest.
    const lines: string[] = [];
    for (const h of EDGES) {
      const self = (before.get(h) as ScopeStatus).self.id;
      const last = await newestFor(self);
      const st = await s.waitStatus(h, (x) => of(x).stream.lastEventId >= last, 15_000, `event ${last}`);
      const { lastEventId: l0, delivered: d0, repeated: r0 } = of(before.get(h) as ScopeStatus).stream;
      const { lastEventId: l1, delivered: d1, repeated, reconnects } = of(st).stream;
      const held = await heldFor(st.self.id, l0, l1);
      lines.push(`${h}: events ${l0}→${l1}, held ${held}, handled ${d1 - d0}, repeated ${repeated - r0}`);
      expect(held, `${h}: events during the outage`).to.be.greaterThan(0);
      expect(d1 - d0, `${h}: every event the database holds for it, each once`).to.equal(held);
      expect(repeated - r0, `${h}: events that came twice`).to.equal(0);
      expect(reconnects, `${h}: stream reconnects`).to.be.greaterThan(
        of(before.get(h) as ScopeStatus).stream.reconnects,
      );
      expect(of(st).registryUrl, `${h} stays on B`).to.equal(urlB);
    }
    const ping = await longPing.done();
    console.log(
      `      on B after ${resumedMs.join(" / ")} ms; ${lines.join("; ")}; a → b ping ${ping.received}/${ping.sent}`,
    );
    for (const [i, h] of EDGES.entries()) expect(resumedMs[i], `${h} on B, ms`).to.be.at.most(5_000);
    expect(ping.received, "a → b through the tunnel across the failover").to.equal(ping.sent);
  });
});
