/**
 * The registry client's event stream under a fake clock and a hand-fed
 * transport (issue 14, "a stream that notices it is dead"): heartbeats keep
 * it alive; a stream that goes silent (a path dropping packets, TCP none the
 * wiser) is given up within 45 s and resumed with Last-Event-ID; an event
 * that comes again is not handled twice; the parser's buffer is bounded.
 */
import { expect } from "chai";
import { PassThrough } from "node:stream";
import type { HttpRequest, HttpResponse } from "../../../src/client/http.js";
import { RegistryClient, newStreamStats, type StreamStats } from "../../../src/client/registry-client.js";
import { SseOverflow, SseParser } from "../../../src/client/sse.js";
import type { Event } from "../../../src/core/protocol.js";
import { generateIdentity } from "../../../src/crypto/keys.js";
import { FakeClock } from "../helpers/fake-clock.js";

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

interface Conn {
  headers: Record<string, string>;
  body: PassThrough;
}

/** A transport that answers every GET with 200 and a body the test writes into. */
function feeder(): { conns: Conn[]; transport: (req: HttpRequest) => Promise<HttpResponse> } {
  const conns: Conn[] = [];
  const transport = (req: HttpRequest): Promise<HttpResponse> => {
    const body = new PassThrough();
    conns.push({ headers: req.headers ?? {}, body });
    req.signal?.addEventListener("abort", () =>
      body.destroy(Object.assign(new Error("aborted"), { name: "AbortError" })),
    );
    return Promise.resolve(Object.assign(body, { statusCode: 200 }) as PassThrough & HttpResponse);
  };
  return { conns, transport };
}

const peerConn = (id: number): string =>
  `id: ${id}\ndata: ${JSON.stringify({
    id,
    type: "cc.ltgc.scope:peerConn",
    network: "corp",
    from: "0123456789abcdef",
    ts: 1,
    body: { peerId: "0123456789abcdef" },
  })}\n\n`;
const ready = (id: number): string => `event: ready\nid: ${id}\ndata: {"lastEventId":${id}}\n\n`;

describe("registry client event stream (issue 14, acceptance 4)", () => {
  let clock: FakeClock;
  let abort: AbortController;
  let done: Promise<void>;
  let stats: StreamStats;
  const seen: number[] = [];
  const disconnects: string[] = [];
  let f: ReturnType<typeof feeder>;

  beforeEach(async () => {
    clock = new FakeClock();
    abort = new AbortController();
    stats = newStreamStats();
    seen.length = 0;
    disconnects.length = 0;
    f = feeder();
    const client = new RegistryClient({
      url: "http://reg",
      network: "corp",
      identity: generateIdentity(),
      clock,
      random: () => 0.5,
      transport: f.transport,
    });
    done = client.events({
      lastEventId: 4,
      stats,
      signal: abort.signal,
      onEvent: (e: Event) => void seen.push(e.id),
      onDisconnect: (err) => void disconnects.push(err.message),
    });
    await flush();
  });

  afterEach(async () => {
    abort.abort();
    await done;
    clock.clearAll();
  });

  it("stays up on heartbeats, gives up a silent stream within 45 s, resumes after the last event", async () => {
    const first = f.conns[0];
    expect(first?.headers["last-event-id"]).to.equal("4");
    first?.body.write(peerConn(5) + ready(5));
    await flush();
    for (let i = 0; i < 8; i++) {
      clock.advance(15_000);
      first?.body.write(": keep-alive\n\n");
      await flush();
    }
    expect(disconnects, "heartbeats every 15 s keep the stream").to.deep.equal([]);
    // The path starts dropping everything: not a byte more, and no FIN either.
    clock.advance(44_000);
    await flush();
    expect(disconnects).to.have.length(1);
    expect(disconnects[0]).to.match(/silent/);
    clock.advance(1_000); // the jittered reconnect wait
    await flush();
    expect(f.conns).to.have.length(2);
    expect(f.conns[1]?.headers["last-event-id"]).to.equal("5");
    expect(stats).to.include({ silent: 1, lastEventId: 5, delivered: 1 });
  });

  it("hands an event that comes again to nobody, and counts it", async () => {
    f.conns[0]?.body.write(peerConn(5) + peerConn(6) + ready(6));
    f.conns[0]?.body.end(); // the registry restarts
    await flush();
    clock.advance(1_000);
    await flush();
    expect(f.conns[1]?.headers["last-event-id"]).to.equal("6");
    // A replay that overlaps what was handled (it must not, but a registry may).
    f.conns[1]?.body.write(peerConn(6) + peerConn(7) + ready(7));
    await flush();
    expect(seen).to.deep.equal([5, 6, 7]);
    expect(stats).to.include({ repeated: 1, delivered: 3, lastEventId: 7 });
  });

  it("a registry that never sends headers is given up too", async () => {
    abort.abort();
    await done;
    const c = new AbortController();
    const hang = (req: HttpRequest): Promise<HttpResponse> =>
      new Promise((_, reject) =>
        req.signal?.addEventListener("abort", () =>
          reject(Object.assign(new Error("aborted"), { name: "AbortError" })),
        ),
      );
    const out: string[] = [];
    const client = new RegistryClient({
      url: "http://reg",
      network: "corp",
      identity: generateIdentity(),
      clock,
      random: () => 0.5,
      transport: hang,
    });
    const p = client.events({
      signal: c.signal,
      onEvent: () => undefined,
      onDisconnect: (e) => void out.push(e.message),
    });
    await flush();
    clock.advance(11_000);
    await flush();
    expect(out).to.have.length(1);
    expect(out[0]).to.match(/silent/);
    c.abort();
    await p;
  });
});

describe("SSE parser bounds", () => {
  it("throws SseOverflow for a line or an event over the limit, and parses normal events", () => {
    const got: string[] = [];
    const p = new SseParser((m) => got.push(m.data), 100);
    p.push(Buffer.from("data: hello\n\n"));
    expect(got).to.deep.equal(["hello"]);
    expect(() => p.push(Buffer.from("data: " + "x".repeat(200)))).to.throw(SseOverflow);
    const q = new SseParser(() => undefined, 100);
    expect(() => {
      for (let i = 0; i < 20; i++) q.push(Buffer.from("data: 0123456789\n"));
    }).to.throw(SseOverflow);
  });
});
