/**
 * Issue 15: two registry replicas on one PostgreSQL database (real
 * processes, real server started by pg-server.ts). Acceptance 1 (fan-out
 * across replicas), 2 (token uses, IPAM and nonces under concurrent joins on
 * both), 3 (one event order, resume on the other replica), 5 (PostgreSQL
 * restarted under load).
 */
import { expect } from "chai";
import { ScopeError } from "../../src/core/errors.js";
import type { Event } from "../../src/core/protocol.js";
import type { Identity } from "../../src/crypto/keys.js";
import { signRequest } from "../../src/crypto/signing.js";
import { memberClient, newPeer, startRegistryProcess, type RegistryProcess } from "./harness.js";
import { sharedPostgres, type PgServer } from "./pg-server.js";
import { record, until, type Recorder } from "./stream-helpers.js";

const peerConn = (peerId: string) => ({ type: "cc.ltgc.scope:peerConn" as const, body: { peerId } });

describe("registry: two replicas on PostgreSQL (real processes)", function () {
  this.timeout(120_000);
  let pgServer: PgServer;
  let a: RegistryProcess;
  let b: RegistryProcess;
  let net = 0;

  before(async () => {
    pgServer = await sharedPostgres();
    const pgUrl = await pgServer.createDatabase();
    // Started together: both run the migrations, the advisory lock lets one do it.
    [a, b] = await Promise.all([startRegistryProcess({ pgUrl }), startRegistryProcess({ pgUrl })]);
  });
  after(async () => Promise.all([a?.dispose(), b?.dispose()]));

  /** A new network (created on A) with a token of `uses`. */
  async function network(uses = 1000) {
    const name = `n${++net}`;
    await a.admin.createNetwork({ name, cidr: "10.77.0.0/16" });
    return { name, token: (await a.admin.createToken(name, { uses })).token };
  }

  async function joinOn(reg: RegistryProcess, n: { name: string; token: string }, name?: string) {
    const p = newPeer(name);
    const client = memberClient(reg, n.name, p.identity);
    return { client, identity: p.identity, joined: await client.join(n.token, p.input) };
  }

  it("an edge on A sees the peerJoin of an edge joining on B within 1 s (acceptance 1)", async () => {
    const n = await network();
    const watcher = await joinOn(a, n, "watcher");
    const r = record(watcher.client, watcher.joined.lastEventId);
    await r.ready;
    const started = Date.now();
    const other = await joinOn(b, n, "other");
    await until(() => r.events.length >= 1, "peerJoin on A", 5000);
    const took = Date.now() - started;
    expect(r.events[0]?.type).to.equal("cc.ltgc.scope:peerJoin");
    expect(r.events[0]?.body).to.include({ id: other.joined.self.id });
    expect(took, "join on B to event on A, ms").to.be.below(1000);
    await r.stop();
  });

  it("100 concurrent joins over both replicas with a 50-use token: 50 join, addresses unique, replays refused on the other replica (acceptance 2)", async () => {
    const n = await network(50);
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) => joinOn(i % 2 ? b : a, n, `j${i}`)),
    );
    const ok = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    expect(ok).to.have.length(50);
    for (const e of refused) expect((e as ScopeError).code).to.equal("token_invalid");
    const addresses = ok.map((j) => j.joined.self.address);
    expect(new Set(addresses).size).to.equal(50);
    const listed = await ok[0]!.client.listPeers();
    expect(listed.map((p) => p.address).sort()).to.deep.equal([...addresses].sort());

    const me = ok[0]!;
    const path = `/v1/networks/${n.name}/peers`;
    const headers = signRequest(
      me.identity,
      me.joined.self.id,
      { method: "GET", path, body: "" },
      Date.now(),
    );
    expect((await fetch(a.url + path, { headers })).status).to.equal(200);
    const replay = await fetch(b.url + path, { headers });
    expect(replay.status).to.equal(401);
    expect(((await replay.json()) as { error: string }).error).to.equal("replay");
    const again = await fetch(a.url + path, { headers });
    expect([again.status, ((await again.json()) as { error: string }).error]).to.deep.equal([401, "replay"]);
  });

  it("one signed request sent to both replicas at the same time is accepted by exactly one (acceptance 2)", async () => {
    const n = await network();
    const me = await joinOn(a, n, "twice");
    const path = `/v1/networks/${n.name}/peers`;
    const outcomes: string[] = [];
    for (let i = 0; i < 30; i++) {
      const headers = signRequest(
        me.identity,
        me.joined.self.id,
        { method: "GET", path, body: "" },
        Date.now(),
      );
      const both = await Promise.all([a, b].map((reg) => fetch(reg.url + path, { headers })));
      const seen = await Promise.all(
        both.map(async (r) => (r.status === 200 ? "ok" : ((await r.json()) as { error: string }).error)),
      );
      outcomes.push(seen.sort().join("+"));
    }
    // Nonces are rows with a primary key: whichever replica inserts second is refused.
    expect(outcomes).to.deep.equal(Array.from({ length: 30 }, () => "ok+replay"));
  });

  it("1000 events written through both replicas: every subscriber, and one hopping replicas every 100, gets all in one order once (acceptance 3)", async () => {
    const n = await network();
    const subA = await joinOn(a, n, "sub-a");
    const subB = await joinOn(b, n, "sub-b");
    const hopper = await joinOn(a, n, "hopper");
    const writers = await Promise.all([a, a, b, b].map((reg, i) => joinOn(reg, n, `w${i}`)));
    // Joined concurrently: the last to commit is not necessarily the last in the array.
    const start = Math.max(...writers.map((w) => w.joined.lastEventId));
    const onA = record(subA.client, start);
    const onB = record(memberClient(b, n.name, subB.identity), start);
    await Promise.all([onA.ready, onB.ready]);

    const hopped = hop(hopper.identity, n.name, start, 1000);
    const posted = (
      await Promise.all(
        writers.map(async (w) => {
          const ids: number[] = [];
          for (let i = 0; i < 250; i++) ids.push(await w.client.postMessage(peerConn(w.joined.self.id)));
          return ids;
        }),
      )
    ).flat();
    const want = [...posted].sort((x, y) => x - y);
    const ids = (es: Event[]) => es.map((e) => e.id);
    await until(() => onA.events.length >= 1000 && onB.events.length >= 1000, "both subscribers", 30_000);
    const hops = await hopped;
    expect(ids(onA.events)).to.deep.equal(want);
    expect(ids(onB.events)).to.deep.equal(want);
    expect(hops.ids).to.deep.equal(want);
    expect(hops.resumes).to.be.at.least(9);
    await Promise.all([onA.stop(), onB.stop()]);
  });

  /** A subscriber that stops after every 100 events and resumes from its last id on the other replica. */
  async function hop(identity: Identity, network: string, from: number, total: number) {
    const got: Event[] = [];
    let resumes = 0;
    for (let last = from; got.length < total; resumes++) {
      const r: Recorder = record(memberClient(resumes % 2 ? b : a, network, identity), last);
      await until(() => r.events.length >= Math.min(100, total - got.length), "100 events", 30_000);
      await r.stop();
      got.push(...r.events);
      last = got[got.length - 1]?.id ?? last;
    }
    return { ids: got.map((e) => e.id), resumes };
  }

  it("PostgreSQL restarted under load: both replicas recover by themselves, no event lost (acceptance 5)", async () => {
    const n = await network();
    const subA = await joinOn(a, n, "sub-a");
    const subB = await joinOn(b, n, "sub-b");
    const writers = await Promise.all([a, b].map((reg, i) => joinOn(reg, n, `w${i}`)));
    const start = Math.max(...writers.map((w) => w.joined.lastEventId));
    const onA = record(subA.client, start);
    const onB = record(memberClient(b, n.name, subB.identity), start);
    await Promise.all([onA.ready, onB.ready]);

    let stop = false;
    let restarted = false;
    const posted: number[] = [];
    // Writes each replica stored after the restart: both must serve again, not just one.
    const afterRestart = writers.map(() => 0);
    const load = writers.map(async (w, i) => {
      while (!stop) {
        try {
          posted.push(await w.client.postMessage(peerConn(w.joined.self.id)));
          if (restarted) afterRestart[i]!++;
        } catch (e) {
          // A 503 while the database is down is allowed; the message was not stored.
          if (!(e instanceof ScopeError) || e.code !== "unavailable") throw e;
        }
      }
    });
    await until(() => posted.length >= 50, "load before the restart");
    await pgServer.restart();
    restarted = true;
    await until(() => afterRestart.every((n) => n >= 25), "writes on A and on B after the restart", 30_000);
    stop = true;
    await Promise.all(load);

    const want = [...posted].sort((x, y) => x - y);
    const counts = () => `want ${want.length}, A has ${onA.events.length}, B has ${onB.events.length}`;
    await until(
      () => onA.events.length >= want.length && onB.events.length >= want.length,
      "subscribers",
      30_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message} (${counts()})\n${a.output().slice(-2000)}\n${b.output().slice(-2000)}`);
    });
    expect(onA.events.map((e) => e.id)).to.deep.equal(want);
    expect(onB.events.map((e) => e.id)).to.deep.equal(want);
    // Gap-free: every id in the range was one of ours (a lost or duplicated commit would show).
    expect(want).to.deep.equal(Array.from({ length: want.length }, (_, i) => start + 1 + i));
    expect(a.child.exitCode).to.equal(null);
    expect(b.child.exitCode).to.equal(null);
    await Promise.all([onA.stop(), onB.stop()]);
  });
});
