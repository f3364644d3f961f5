/**
 * Acceptance 2: the event stream. Two subscribers see peerJoin and peerLeave
 * in order; after the registry is SIGKILLed and restarted, resuming with
 * Last-Event-ID delivers every missed event exactly once.
 */
import { expect } from "chai";
import type { Event } from "../../src/core/protocol.js";
import {
  describeStores,
  memberClient,
  newPeer,
  startRegistryProcess,
  type RegistryProcess,
} from "./harness.js";
import { record, until } from "./stream-helpers.js";

const kinds = (es: Event[]) => es.map((e) => `${e.type.split(":")[1]}`);
const ids = (es: Event[]) => es.map((e) => e.id);

describeStores("registry: event stream (real process)", function (store) {
  this.timeout(60_000);
  let reg: RegistryProcess;
  let token: string;

  before(async () => {
    reg = await startRegistryProcess({ store });
    await reg.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
    token = (await reg.admin.createToken("corp", { uses: 100 })).token;
  });
  after(async () => reg?.dispose());

  async function join(name: string) {
    const p = newPeer(name);
    const client = memberClient(reg, "corp", p.identity);
    const joined = await client.join(token, p.input);
    return { client, joined };
  }

  it("delivers peerJoin and peerLeave to two subscribers, in order", async () => {
    const s1 = await join("sub-1");
    const s2 = await join("sub-2");
    const r1 = record(s1.client, s2.joined.lastEventId);
    const r2 = record(s2.client, s2.joined.lastEventId);
    await Promise.all([r1.ready, r2.ready]);

    const x = await join("x");
    await x.client.leave();
    await until(() => r1.events.length >= 2 && r2.events.length >= 2, "both subscribers");
    for (const r of [r1, r2]) {
      expect(kinds(r.events)).to.deep.equal(["peerJoin", "peerLeave"]);
      expect(r.events[0]?.body).to.include({ id: x.joined.self.id });
      expect(r.events[1]?.body).to.deep.equal({ peerId: x.joined.self.id, reason: "left" });
    }
    await Promise.all([r1.stop(), r2.stop()]);
  });

  it("resumes with Last-Event-ID after SIGKILL and restart: every missed event once", async () => {
    const watcher = await join("watcher");
    const follower = await join("follower");
    // `live` keeps its stream open across the kill and reconnects by itself.
    const live = record(follower.client, follower.joined.lastEventId);
    const first = record(watcher.client, follower.joined.lastEventId);
    await Promise.all([first.ready, live.ready]);

    const a = await join("a");
    await until(() => first.events.length === 1, "the first event");
    await first.stop();
    const resumeFrom = first.events[0]!.id;

    // Missed while the watcher is away: before the crash...
    const b = await join("b");
    await a.client.leave();
    await reg.kill("SIGKILL");
    await reg.restart();
    // ...and after the restart.
    await b.client.postMessage({ type: "cc.ltgc.scope:peerConn", body: { peerId: b.joined.self.id } });
    const c = await join("c");

    const resumed = record(watcher.client, resumeFrom);
    await resumed.ready;
    await until(() => resumed.events.length >= 4, "the missed events");
    await new Promise((r) => setTimeout(r, 300)); // anything extra would show up now
    expect(kinds(resumed.events)).to.deep.equal(["peerJoin", "peerLeave", "peerConn", "peerJoin"]);
    expect(resumed.events[0]?.body).to.include({ id: b.joined.self.id });
    expect(resumed.events[3]?.body).to.include({ id: c.joined.self.id });
    expect(new Set(ids(resumed.events)).size).to.equal(resumed.events.length);
    expect(ids(resumed.events)).to.deep.equal([...ids(resumed.events)].sort((x, y) => x - y));

    await until(() => live.events.length >= 5, "the reconnecting follower", 20_000);
    expect(kinds(live.events)).to.deep.equal(["peerJoin", "peerJoin", "peerLeave", "peerConn", "peerJoin"]);
    expect(new Set(ids(live.events)).size).to.equal(live.events.length);
    await Promise.all([resumed.stop(), live.stop()]);
  });

  it("tells a client whose resume point is unknown to resync", async () => {
    const p = await join("resyncer");
    const ac = new AbortController();
    let resync: number | undefined;
    const done = p.client.events({
      lastEventId: 10_000_000,
      signal: ac.signal,
      onEvent: () => {},
      onResync: (id) => void (resync = id),
      onReady: () => ac.abort(),
    });
    await done;
    expect(resync).to.be.a("number");
  });
});
