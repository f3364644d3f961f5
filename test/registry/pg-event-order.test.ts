/**
 * The event-order race of issue 15, made to happen: a transaction takes the
 * next id of a network and holds it uncommitted while a second replica
 * writes an event and a reader reads. With ids from a plain sequence the
 * second event would commit first (id 2 visible, id 1 not yet), and a reader
 * resuming with `id > 2` would never see 1. The counter row makes the second
 * writer wait, so every reader sees 1 before 2.
 */
import { expect } from "chai";
import pg from "pg";
import { silentLogger } from "../../src/core/logger.js";
import { PgStore, insertEvent } from "../../src/registry/pg-store.js";
import type { EventDraft, StoredEvent } from "../../src/registry/store.js";
import { sharedPostgres } from "./pg-server.js";
import { until } from "./stream-helpers.js";

const draft = (n: number): EventDraft => ({
  type: "cc.ltgc.scope:peerConn",
  network: "corp",
  from: `${n}`.padStart(16, "0"),
  ts: n,
  body: { peerId: "0".repeat(16) },
});

describe("PgStore: event order across replicas (real PostgreSQL)", function () {
  this.timeout(60_000);
  let url: string;
  let replicaA: PgStore;
  let replicaB: PgStore;
  let raw: pg.Client;
  let probe: pg.Client;

  /** Whether a backend of this database waits for a lock (outside `raw`: its stats snapshot would not change). */
  const waitsOnLock = async () =>
    (
      await probe.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      )
    ).rows[0]!.n > 0;

  before(async () => {
    url = await (await sharedPostgres()).createDatabase();
    [replicaA, replicaB] = await Promise.all([
      PgStore.open(url, silentLogger),
      PgStore.open(url, silentLogger),
    ]);
    raw = new pg.Client({ connectionString: url });
    probe = new pg.Client({ connectionString: url });
    await Promise.all([raw.connect(), probe.connect()]);
  });
  after(async () => {
    await Promise.all([raw?.end(), probe?.end()]);
    await Promise.all([replicaA?.close(), replicaB?.close()]);
  });

  it("a reader resuming after the last id it saw never skips an id that commits late", async () => {
    await replicaA.createNetwork({ name: "corp", cidr: "10.1.0.0/16", topology: "mesh", createdAt: 1 });
    const emitted: Record<"a" | "b", number[]> = { a: [], b: [] };
    replicaA.onEvent((e: StoredEvent) => emitted.a.push(e.event.id));
    replicaB.onEvent((e: StoredEvent) => emitted.b.push(e.event.id));

    await raw.query("BEGIN");
    const early = await insertEvent(raw, draft(1)); // holds its id, not committed
    let lateDone = false;
    const late = replicaB.appendEvent(draft(2)).then((e) => ((lateDone = true), e));
    // The second writer has either committed (what a sequence allows) or waits on a lock (the counter row).
    while (!lateDone && !(await waitsOnLock())) await new Promise((r) => setTimeout(r, 20));
    const seenFirst = await replicaA.eventsAfter({ network: "corp", after: 0, viewer: "reader", limit: 100 });
    await raw.query("COMMIT");
    const second = await late;
    const resumeFrom = seenFirst.at(-1)?.event.id ?? 0;
    const seenThen = await replicaA.eventsAfter({
      network: "corp",
      after: resumeFrom,
      viewer: "reader",
      limit: 100,
    });

    expect([early.event.id, second.event.id]).to.deep.equal([1, 2]);
    expect([...seenFirst, ...seenThen].map((e) => e.event.id)).to.deep.equal([1, 2]);
    await until(() => emitted.a.length === 2 && emitted.b.length === 2, "both replicas' fan-out");
    expect(emitted).to.deep.equal({ a: [1, 2], b: [1, 2] });
  });
});
