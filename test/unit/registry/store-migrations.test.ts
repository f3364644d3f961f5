/** Migrations on an old schema, and the store on a real SQLite file. */
import { expect } from "chai";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ScopeError } from "../../../src/core/errors.js";
import { MIGRATIONS, SqliteStore, migrate } from "../../../src/registry/sqlite-store.js";

describe("registry/sqlite-store migrations", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "scope-store-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("upgrades a v1 database, keeping its data and event ids", async () => {
    const file = join(dir, "registry.db");
    const old = new Database(file);
    migrate(old, MIGRATIONS.slice(0, 1));
    old.prepare("INSERT INTO networks VALUES ('corp', '10.88.0.0/16', NULL, 'mesh', 1)").run();
    old
      .prepare(
        "INSERT INTO events (network, sender, recipient, ts, data) VALUES ('corp', 'registry', NULL, 1, '{}')",
      )
      .run();
    expect(old.pragma("user_version", { simple: true })).to.equal(1);
    old.close();

    const store = new SqliteStore(file);
    expect((await store.listNetworks()).map((n) => n.name)).to.deep.equal(["corp"]);
    expect(await store.lastEventId()).to.equal(1);
    expect(await store.prunedThrough("corp")).to.equal(0); // column added by v2
    expect(await store.useNonce("p:n", Date.now() + 1000)).to.equal(true); // table added by v2
    expect(await store.useNonce("p:n", Date.now() + 1000)).to.equal(false);
    store.close();
    const db = new Database(file);
    expect(db.pragma("user_version", { simple: true })).to.equal(MIGRATIONS.length);
    db.close();
    expect(statSync(file).mode & 0o777).to.equal(0o600);
  });

  it("refuses a database from a newer registry", () => {
    const file = join(dir, "registry.db");
    const db = new Database(file);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => new SqliteStore(file)).to.throw(ScopeError, /newer/);
  });

  it("keeps event ids increasing after events are pruned", async () => {
    const store = new SqliteStore(join(dir, "r.db"));
    await store.createNetwork({ name: "corp", cidr: "10.88.0.0/16", topology: "mesh", createdAt: 0 });
    const draft = {
      type: "cc.ltgc.scope:peerConn",
      network: "corp",
      from: "0123456789abcdef",
      ts: 0,
      body: { peerId: "0123456789abcdef" },
    } as const;
    for (let i = 0; i < 5; i++) await store.appendEvent(draft);
    expect(await store.pruneEvents({ maxAgeMs: 1e12, maxPerNetwork: 2 }, 10)).to.equal(3);
    expect(await store.prunedThrough("corp")).to.equal(3);
    expect((await store.appendEvent(draft)).event.id).to.equal(6);
    store.close();
  });
});
