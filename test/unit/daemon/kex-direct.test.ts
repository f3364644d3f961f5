import { expect } from "chai";
import type { Endpoint, Event, PostMessage } from "../../../src/core/protocol.js";
import {
  KexDirect,
  WINDOW_INITIAL_MS,
  WINDOW_MAX_MS,
  WINDOW_MIN_MS,
} from "../../../src/daemon/kex-direct.js";
import { useFakeClock, type FakeClock } from "../helpers/fake-clock.js";

const A = { id: "aaaaaaaaaaaaaaaa", address: "10.77.0.1" };
const B = { id: "bbbbbbbbbbbbbbbb", address: "10.77.0.2" };
const PORT = 51821;
const sig = (n: number): string => Buffer.alloc(64, n).toString("base64");
const kex = (to: string, n: number): PostMessage => ({
  type: "cc.ltgc.scope:kex",
  to,
  body: {
    epoch: 1_700_000_000 + n,
    stage: "offer",
    payload: Buffer.alloc(8, n).toString("base64"),
    signature: sig(n),
  },
});

/** One side: what it relayed, what it delivered; `wire` carries its datagrams to the other side. */
class Side {
  readonly relayed: PostMessage[] = [];
  readonly delivered: Event[] = [];
  live = true;
  readonly kd: KexDirect;
  constructor(
    clock: FakeClock,
    me: typeof A,
    peer: typeof A,
    wire: (from: Endpoint, to: Endpoint, bytes: Uint8Array) => void,
  ) {
    this.kd = new KexDirect({
      clock,
      sendDatagram: (to, bytes) => wire({ address: me.address, port: PORT }, to, bytes),
      viaRegistry: (m) => this.relayed.push(m),
      deliver: (e) => this.delivered.push(e),
      tunnelOf: (id) => (id === peer.id && this.live ? { address: peer.address, port: PORT } : undefined),
      addressesOf: (id) => (id === peer.id ? [peer.address] : []),
      self: () => ({ id: me.id, network: "lab" }),
    });
  }
}

describe("daemon kex-direct: kex messages through the tunnel, the registry as fallback", () => {
  const h = useFakeClock();
  let a: Side;
  let b: Side;
  /** Datagrams in flight, delivered by flush(); drop: lose the next ones. */
  let queue: { from: Endpoint; to: Endpoint; bytes: Uint8Array }[];
  let drop: number;
  const flush = (): void => {
    for (let q = queue.shift(); q; q = queue.shift()) {
      const side = q.to.address === A.address ? a : b;
      expect(side.kd.receive(q.from, q.bytes)).to.equal(true);
    }
  };

  beforeEach(() => {
    queue = [];
    drop = 0;
    const wire = (from: Endpoint, to: Endpoint, bytes: Uint8Array): void => {
      if (drop > 0) drop--;
      else queue.push({ from, to, bytes });
    };
    a = new Side(h.clock, A, B, wire);
    b = new Side(h.clock, B, A, wire);
  });
  afterEach(() => {
    a.kd.close();
    b.kd.close();
  });

  it("delivers a kex message through the tunnel, acks it, and never relays it", () => {
    a.kd.send(kex(B.id, 1));
    h.clock.advance(30);
    flush();
    expect(b.delivered).to.have.length(1);
    expect(b.delivered[0]).to.include({ type: "cc.ltgc.scope:kex", from: A.id, to: B.id, network: "lab" });
    h.clock.advance(WINDOW_INITIAL_MS * 2);
    expect(a.relayed).to.deep.equal([]);
    expect(a.kd.counts).to.include({ direct: 1, acked: 1, fallback: 0 });
    // The window now follows the measured round trip (30 ms), at its floor.
    expect(a.kd.windowMs(B.id)).to.equal(WINDOW_MIN_MS);
  });

  it("relays a message whose ack does not come within the window", () => {
    drop = 1;
    const m = kex(B.id, 2);
    a.kd.send(m);
    h.clock.advance(WINDOW_INITIAL_MS - 1);
    expect(a.relayed).to.deep.equal([]);
    h.clock.advance(1);
    expect(a.relayed).to.deep.equal([m]);
    expect(b.delivered).to.deep.equal([]);
  });

  it("an ack that comes after the fallback still widens the peer's window", () => {
    const m = kex(B.id, 5);
    a.kd.send(m);
    h.clock.advance(WINDOW_INITIAL_MS); // no ack yet: relayed
    expect(a.relayed).to.deep.equal([m]);
    flush(); // B reads it late and acks: a round trip of WINDOW_INITIAL_MS
    expect(a.kd.counts).to.include({ direct: 1, acked: 0, fallback: 1 });
    expect(a.kd.windowMs(B.id)).to.equal(
      Math.min(WINDOW_MAX_MS, Math.max(WINDOW_MIN_MS, 4 * WINDOW_INITIAL_MS)),
    );
  });

  it("relays at once when the tunnel is not live, and relays other messages untouched", () => {
    a.live = false;
    const m = kex(B.id, 3);
    a.kd.send(m);
    const other: PostMessage = { type: "cc.ltgc.scope:peerConn", body: { peerId: A.id } };
    a.kd.send(other);
    expect(a.relayed).to.deep.equal([m, other]);
    expect(queue).to.deep.equal([]);
  });

  it("takes a kex datagram only from the claimed sender's tunnel address, and an ack only for its own message", () => {
    a.kd.send(kex(B.id, 4));
    const q = queue.shift();
    if (!q) throw new Error("no datagram");
    // The same bytes from an address outside the tunnel: dropped, not acked, not delivered.
    expect(b.kd.receive({ address: "198.51.100.9", port: PORT }, q.bytes)).to.equal(true);
    expect(b.delivered).to.deep.equal([]);
    expect(queue).to.deep.equal([]);
    // An ack for something else does not stop the fallback.
    const bogus = Buffer.concat([Buffer.from("SCKA"), Buffer.alloc(16, 7)]);
    expect(a.kd.receive({ address: B.address, port: PORT }, bogus)).to.equal(true);
    h.clock.advance(WINDOW_INITIAL_MS);
    expect(a.relayed).to.have.length(1);
  });

  it("leaves probes to the prober", () => {
    expect(b.kd.receive({ address: A.address, port: PORT }, Buffer.from("SCPB-a-probe"))).to.equal(false);
  });
});
