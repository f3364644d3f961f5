/**
 * Issue 15 acceptance 6: `scope registry migrate` from a populated SQLite
 * registry into PostgreSQL. Every peer keeps its id and address and stays a
 * member (signed requests pass, no re-join), a stream resumes from an event
 * id seen before the migration, new ids continue above the old ones, and a
 * viewer token of the web view still opens it. (Real daemons across the
 * move: test/lab/migrate.test.ts.)
 */
import { expect } from "chai";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { ScopeError } from "../../src/core/errors.js";
import { MAIN, memberClient, newPeer, startRegistryProcess, type RegistryProcess } from "./harness.js";
import { sharedPostgres } from "./pg-server.js";
import { record, until } from "./stream-helpers.js";

describe("scope registry migrate: SQLite to PostgreSQL (real processes)", function () {
  this.timeout(60_000);
  const regs: RegistryProcess[] = [];
  after(async () => Promise.all(regs.map((r) => r.dispose())));

  it("moves networks, peers, tokens and events; members carry on without re-joining", async () => {
    const old = await startRegistryProcess();
    regs.push(old);
    await old.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
    const { token } = await old.admin.createToken("corp", { uses: 4 });
    const viewer = (await old.admin.createViewerToken("corp", {})).token;
    const hosts = ["a", "b", "c"].map((n) => newPeer(`m-${n}`));
    const joined = [];
    for (const h of hosts) joined.push(await memberClient(old, "corp", h.identity).join(token, h.input));
    const [a, b] = joined.map((j) => j.self);
    const resumeFrom = joined[2]!.lastEventId;
    const before = await memberClient(old, "corp", hosts[0]!.identity).postMessage({
      type: "cc.ltgc.scope:peerConn",
      body: { peerId: a!.id },
    });
    await old.kill("SIGTERM");

    const pgUrl = await (await sharedPostgres()).createDatabase();
    const out = await promisify(execFile)(process.execPath, [
      MAIN,
      "registry",
      "migrate",
      "--from",
      `sqlite:${join(old.dataDir, "registry.db")}`,
      "--to",
      pgUrl,
      "--json",
    ]);
    expect(JSON.parse(out.stdout)).to.deep.equal({
      networks: 1,
      tokens: 1,
      peers: 3,
      events: 4,
      viewerTokens: 1,
      paths: 0,
    });

    const neu = await startRegistryProcess({ pgUrl });
    regs.push(neu);
    const clients = hosts.map((h) => memberClient(neu, "corp", h.identity));
    // Signed member requests pass on the new store: still members, same ids and addresses.
    const listed = await clients[0]!.listPeers();
    expect(listed.map((p) => [p.id, p.address])).to.deep.equal(
      joined.map((j) => [j.self.id, j.self.address]).sort((x, y) => (x[1]! < y[1]! ? -1 : 1)),
    );

    // The web view's viewer token moved too: the dashboard link an admin handed out still opens.
    const view = await fetch(`${neu.url}/v1/networks/corp/view`, {
      headers: { authorization: `Bearer ${viewer}` },
    });
    expect(view.status, "the view with a viewer token from before the migration").to.equal(200);

    // b resumes from before the migration: the copied event, then a new one, each once.
    const r = record(clients[1]!, resumeFrom);
    await r.ready;
    const after = await clients[0]!.postMessage({ type: "cc.ltgc.scope:peerConn", body: { peerId: a!.id } });
    await until(() => r.events.length >= 2, "events across the migration");
    expect(r.events.map((e) => e.id)).to.deep.equal([before, after]);
    expect(after).to.be.greaterThan(before);
    await r.stop();

    // The token's remaining use moved too: one more join, then used up.
    const d = newPeer("m-d");
    const dj = await memberClient(neu, "corp", d.identity).join(token, d.input);
    expect([a!.address, b!.address]).to.not.include(dj.self.address);
    const e = newPeer("m-e");
    const refused = await memberClient(neu, "corp", e.identity)
      .join(token, e.input)
      .catch((err: unknown) => err);
    expect((refused as ScopeError).code).to.equal("token_invalid");
  });
});
