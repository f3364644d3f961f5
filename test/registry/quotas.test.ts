/**
 * Issue 14, acceptance 2: quotas. One member floods /messages and opens
 * event streams past its quota: 429 {error, message} with Retry-After, and
 * the events table holds no more than the quota let through. Meanwhile other
 * members join and relay messages, and their events reach their streams;
 * the p99 of their requests is printed (not asserted: timing is no test).
 * Also: joins past join_per_address are refused with 429 before any work.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import { ErrorBody, type Event } from "../../src/core/protocol.js";
import { generateIdentity, peerIdOf, type Identity } from "../../src/crypto/keys.js";
import { signRequest } from "../../src/crypto/signing.js";
import { percentile } from "../lab/checks.js";
import {
  memberClient,
  newPeer,
  record,
  startRegistryProcess,
  until,
  type RegistryProcess,
} from "./harness.js";

const MESSAGES_PER_PEER = 50;
const STREAMS_PER_PEER = 2;
const FLOOD = 1500;
const OTHERS = 8;

function eventRows(reg: RegistryProcess): number {
  const db = join(reg.dataDir, "registry.db");
  return Number(
    execFileSync("sqlite3", ["-readonly", db, "SELECT count(*) FROM events"], { encoding: "utf8" }),
  );
}

/** A signed request as the member would send it, answered raw (status, headers, body). */
async function signed(reg: RegistryProcess, identity: Identity, method: string, path: string, body = "") {
  const headers = signRequest(
    identity,
    peerIdOf(identity.publicKey),
    { method, path, body: Buffer.from(body) },
    Date.now(),
  );
  return fetch(reg.url + path, {
    method,
    ...(body ? { body } : {}),
    headers: { ...headers, ...(body ? { "content-type": "application/json" } : {}) },
  });
}

async function expect429(r: Response): Promise<void> {
  expect(r.status).to.equal(429);
  expect(Number(r.headers.get("retry-after"))).to.be.greaterThan(0);
  const body = ErrorBody.parse(await r.json());
  expect(body.error).to.equal("rate_limited");
}

describe("registry: quotas per member and per address (real process)", function () {
  this.timeout(120_000);
  let reg: RegistryProcess;
  let token: string;

  before(async () => {
    reg = await startRegistryProcess({
      extraConfig: [
        "[limits]",
        `messages_per_peer = ${MESSAGES_PER_PEER}/1m`,
        `streams_per_peer = ${STREAMS_PER_PEER}`,
        "join_per_address = 1000/1m",
        "requests_per_address = off",
        "",
      ].join("\n"),
    });
    await reg.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
    token = (await reg.admin.createToken("corp", { uses: 1000 })).token;
  });
  after(async () => reg?.dispose());

  it("a flooding member gets 429s and a bounded events table; the others' joins and events flow", async () => {
    const flooder = newPeer("flooder");
    const joined = await memberClient(reg, "corp", flooder.identity).join(token, flooder.input);
    const others = await Promise.all(
      Array.from({ length: OTHERS }, async (_, i) => {
        const p = newPeer(`other-${i}`);
        const client = memberClient(reg, "corp", p.identity);
        const j = await client.join(token, p.input);
        return { client, id: j.self.id, recorder: record(client, j.lastEventId) };
      }),
    );
    await Promise.all(others.map((o) => o.recorder.ready));
    const rowsBefore = eventRows(reg);

    // Streams: the quota's worth open, the next ones refused.
    const streams: Response[] = [];
    for (let i = 0; i < STREAMS_PER_PEER + 3; i++)
      streams.push(await signed(reg, flooder.identity, "GET", "/v1/networks/corp/events"));
    expect(streams.slice(0, STREAMS_PER_PEER).map((r) => r.status)).to.deep.equal([200, 200]);
    for (const r of streams.slice(STREAMS_PER_PEER)) await expect429(r);

    // The flood, and at the same time the others' ordinary work, timed.
    const path = "/v1/networks/corp/messages";
    const conn = JSON.stringify({ type: "cc.ltgc.scope:peerConn", body: { peerId: joined.self.id } });
    const statuses = new Map<number, number>();
    let sent = 0;
    let first429: Response | undefined;
    const flood = async () => {
      while (sent < FLOOD) {
        sent++;
        const r = await signed(reg, flooder.identity, "POST", path, conn);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 429 && !first429) first429 = r;
        else await r.body?.cancel();
      }
    };
    const latencies: number[] = [];
    const timed = async <T>(p: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const out = await p();
      latencies.push(performance.now() - t0);
      return out;
    };
    const ordinary = async () => {
      const newcomers: string[] = [];
      for (let round = 0; round < 4; round++) {
        const p = newPeer();
        newcomers.push(
          (await timed(() => memberClient(reg, "corp", p.identity).join(token, p.input))).self.id,
        );
        for (const [i, o] of others.entries()) {
          const to = others[(i + 1) % others.length]?.id ?? "";
          await timed(() =>
            o.client.postMessage({
              type: "cc.ltgc.scope:peerReport",
              to,
              body: { about: to, path: "direct" },
            }),
          );
        }
      }
      return newcomers;
    };
    const [newcomers] = await Promise.all([ordinary(), ...Array.from({ length: 16 }, flood)]);

    if (!first429) throw new Error("the flood never got a 429");
    await expect429(first429);
    const accepted = statuses.get(202) ?? 0;
    expect([...statuses.keys()].sort()).to.deep.equal([202, 429]);
    // One fixed window, or two if the flood straddled a window's end.
    expect(accepted).to.be.within(MESSAGES_PER_PEER, 2 * MESSAGES_PER_PEER);

    // Every other member saw every newcomer and every report addressed to it.
    const seen = <T extends Event["type"]>(events: Event[], type: T) =>
      events.filter((e): e is Extract<Event, { type: T }> => e.type === type);
    await until(
      () =>
        others.every(
          (o) =>
            newcomers.every((id) =>
              seen(o.recorder.events, "cc.ltgc.scope:peerJoin").some((e) => e.body.id === id),
            ) && seen(o.recorder.events, "cc.ltgc.scope:peerReport").length === 4,
        ),
      "the others' events",
    );
    // The table holds the flooder's quota, the newcomers and the reports: nothing else.
    expect(eventRows(reg) - rowsBefore).to.equal(accepted + newcomers.length + 4 * OTHERS);

    console.log(
      `      flood: ${accepted} accepted, ${statuses.get(429)} refused (429); others' requests: ` +
        `${latencies.length}, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms ` +
        `(load ${execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ").slice(0, 3).join(" ")})`,
    );
    for (const r of streams) await r.body?.cancel().catch(() => {});
    await Promise.all(others.map((o) => o.recorder.stop()));
  });

  it("refuses joins past join_per_address with 429 and Retry-After", async function () {
    // A registry of its own: this one counts joins per address tightly.
    const tight = await startRegistryProcess({ extraConfig: "[limits]\njoin_per_address = 3/1m\n" });
    try {
      await tight.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
      const { token: t } = await tight.admin.createToken("corp", { uses: 10 });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const p = newPeer();
        try {
          await memberClient(tight, "corp", p.identity).join(t, p.input);
          statuses.push(200);
        } catch (e) {
          statuses.push((e as { status?: number }).status ?? 0);
        }
      }
      expect(statuses).to.deep.equal([200, 200, 200, 429, 429]);
      // Counted before any work: a stranger's fresh key is refused the same way.
      const stranger = generateIdentity();
      const r = await signed(tight, stranger, "POST", "/v1/networks/corp/join", "{}");
      await expect429(r);
    } finally {
      await tight.dispose();
    }
  });
});
