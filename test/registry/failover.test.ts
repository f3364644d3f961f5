/**
 * Issue 15 acceptance 4, registry side: an edge following the stream of
 * replica A (`url = A, B`) when A is SIGKILLed moves to B within 5 s and gets
 * every event emitted meanwhile exactly once; so does an edge whose one URL
 * names both replicas by a DNS name with two addresses. (The in-tunnel part
 * of the acceptance: test/lab/failover.test.ts.)
 */
import { expect } from "chai";
import { RegistryClient } from "../../src/client/registry-client.js";
import { freePort, memberClient, newPeer, startRegistryProcess, type RegistryProcess } from "./harness.js";
import { sharedPostgres } from "./pg-server.js";
import { record, until } from "./stream-helpers.js";

/** A on the client's first registry, B the next; kills A mid-stream and checks what the client got. */
async function resumesOnB(
  a: RegistryProcess,
  b: RegistryProcess,
  url: string,
  resolve?: (h: string) => Promise<string[]>,
) {
  await a.admin.createNetwork({ name: "corp", cidr: "10.66.0.0/16" });
  const { token } = await a.admin.createToken("corp", { uses: 10 });
  const edge = newPeer("edge");
  const client = new RegistryClient({
    url,
    network: "corp",
    identity: edge.identity,
    ...(resolve ? { resolve } : {}),
  });
  const joined = await client.join(token, edge.input); // on A, the first of the list
  expect(client.currentUrl).to.equal(url.split(",")[0]);
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
}

describe("registry client: failover across replicas (real processes)", function () {
  this.timeout(60_000);
  const running: RegistryProcess[] = [];
  const pair = async (opts: { host?: string; port?: number }[]) => {
    const pgUrl = await (await sharedPostgres()).createDatabase();
    const [a, b] = await Promise.all(opts.map((o) => startRegistryProcess({ pgUrl, ...o })));
    running.push(a!, b!);
    return [a!, b!] as const;
  };
  afterEach(async () => Promise.all(running.splice(0).map((p) => p.dispose())));

  it("resumes on the next registry of the list after SIGKILL, every event once", async () => {
    const [a, b] = await pair([{}, {}]);
    await resumesOnB(a, b, `${a.url}, ${b.url}`);
  });

  it("resumes on the next address of a DNS name after SIGKILL, every event once", async () => {
    // Both replicas on one port, each on its own loopback address, behind one name.
    const port = await freePort();
    const [a, b] = await pair([
      { host: "127.0.0.2", port },
      { host: "127.0.0.3", port },
    ]);
    const zone = (host: string) =>
      Promise.resolve(host === "replicas.scope.test" ? ["127.0.0.2", "127.0.0.3"] : []);
    await resumesOnB(a, b, `http://replicas.scope.test:${port}`, zone);
  });
});
