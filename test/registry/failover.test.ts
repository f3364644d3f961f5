/**
 * Issue 15 acceptance 4, registry side: an edge following the stream of
 * replica A (`url = A, B`) when A is SIGKILLed moves to B within 5 s and gets
 * every event emitted meanwhile exactly once. (The in-tunnel part of the
 * acceptance needs the lab: not covered here.)
 */
import { expect } from "chai";
import { RegistryClient } from "../../src/client/registry-client.js";
import { memberClient, newPeer, startRegistryProcess, type RegistryProcess } from "./harness.js";
import { sharedPostgres } from "./pg-server.js";
import { record, until } from "./stream-helpers.js";

describe("registry client: failover across replicas (real processes)", function () {
  this.timeout(60_000);
  let a: RegistryProcess;
  let b: RegistryProcess;

  before(async () => {
    const pgUrl = await (await sharedPostgres()).createDatabase();
    [a, b] = await Promise.all([startRegistryProcess({ pgUrl }), startRegistryProcess({ pgUrl })]);
  });
  after(async () => Promise.all([a?.dispose(), b?.dispose()]));

  it("resumes on the next registry after SIGKILL, every event once", async () => {
    await a.admin.createNetwork({ name: "corp", cidr: "10.66.0.0/16" });
    const { token } = await a.admin.createToken("corp", { uses: 10 });
    const edge = newPeer("edge");
    const client = new RegistryClient({
      url: `${a.url}, ${b.url}`,
      network: "corp",
      identity: edge.identity,
    });
    const joined = await client.join(token, edge.input); // on A, the first of the list
    const w = newPeer("writer");
    const writer = memberClient(b, "corp", w.identity);
    const wj = await writer.join(token, w.input);
    const post = () => writer.postMessage({ type: "cc.ltgc.scope:peerConn", body: { peerId: wj.self.id } });

    const r = record(client, joined.lastEventId);
    await r.ready;
    const want = [wj.lastEventId, await post()];
    await until(() => r.events.length >= 2, "events on A");
    await a.kill("SIGKILL");
    const killed = Date.now();
    for (let i = 0; i < 20; i++) want.push(await post());
    await until(() => r.events.length >= want.length, "events after failover", 5000);
    expect(Date.now() - killed, "failover, ms").to.be.below(5000);
    expect(r.events.map((e) => e.id)).to.deep.equal(want);
    // Requests follow: the client now talks to B.
    expect((await client.listPeers()).map((p) => p.id)).to.include(joined.self.id);
    await r.stop();
    client.close();
  });
});
