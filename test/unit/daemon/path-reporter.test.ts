/**
 * Path reports for the web view (issue 16): what a daemon sends, when, and
 * that the registry ends with what `scope status` says on every end.
 */
import { expect } from "chai";
import type { TimerId } from "../../../src/core/clock.js";
import type { PeerStatus } from "../../../src/core/engine/index.js";
import type { PathView } from "../../../src/core/protocol.js";
import { MIN_INTERVAL_MS, PathReporter, REFRESH_MS, viewOf } from "../../../src/daemon/path-reporter.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { useDaemonWorld, type DaemonWorld } from "../helpers/daemon-world.js";

const row = (id: string, name: string, over: Partial<PeerStatus> = {}): PeerStatus => ({
  id,
  name,
  publicKey: "k",
  address: "10.0.0.1",
  path: "direct",
  endpoint: "192.0.2.1:51820",
  family: "ipv4",
  latencyMs: 1.25,
  lastHandshakeMs: null,
  reason: null,
  settled: true,
  psk: null,
  hub: null,
  ...over,
});

const A = "aaaaaaaaaaaaaaaa";
const H = "hhhhhhhhhhhhhhhh".replace(/h/g, "1");

describe("daemon: path reports", () => {
  const t = useFakeClock();

  it("a status row becomes a view: the hub by id, the handshake as an age, no reason when direct", () => {
    const now = 1_000_000;
    const hubs = new Map([["hub1", H]]);
    expect(viewOf(row(A, "a", { path: "hub", hub: "hub1", reason: "symmetric NAT" }), hubs, now)).to.include({
      path: "hub",
      hub: H,
      reason: "symmetric NAT",
    });
    const d = viewOf(row(A, "a", { lastHandshakeMs: now - 12_345, reason: "stale" }), hubs, now);
    expect(d).to.include({ handshakeAgeS: 12, reason: null, hub: null, pskEpoch: null });
    expect(viewOf(row(A, "a", { psk: { epoch: 3, since: 0, rotations: 3 } }), hubs, now).pskEpoch).to.equal(
      3,
    );
  });

  it("sends at once, then at most every MIN_INTERVAL_MS, only changed pairs, all of them again every REFRESH_MS", async () => {
    let rows = [row(A, "a"), row(H, "hub1")];
    const sent: PathView[][] = [];
    const r = new PathReporter({
      clock: t.clock,
      peers: () => rows,
      send: async (v) => void sent.push(v),
      onError: () => {},
    });
    const settle = async (ms: number) => {
      t.clock.advance(ms);
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };
    r.changed();
    await settle(0);
    expect(sent.map((s) => s.map((v) => v.peer))).to.deep.equal([[A, H]]);
    // A new shape waits for the interval since the last report.
    rows = [row(A, "a", { path: "hub", hub: "hub1", reason: "symmetric NAT" }), row(H, "hub1")];
    r.changed();
    await settle(MIN_INTERVAL_MS - 1);
    expect(sent).to.have.length(1);
    await settle(1);
    expect(sent[1]?.map((v) => [v.peer, v.path, v.hub])).to.deep.equal([[A, "hub", H]]);
    // REFRESH_MS after the first report every pair goes again (latency and handshake age drift),
    // with no engine step to wake the reporter.
    await settle(REFRESH_MS - MIN_INTERVAL_MS);
    expect(sent[2]?.map((v) => v.peer)).to.deep.equal([A, H]);
    r.close();
  });

  it("idle, engine steps that change no shape wake nothing; pairs settled apart share one refresh", async () => {
    let rows = [row(A, "a")];
    const sent: string[][] = [];
    let wakes = 0;
    const clock = {
      now: () => t.clock.now(),
      clearTimer: (id: TimerId) => t.clock.clearTimer(id),
      setTimer: (ms: number, fn: () => void) => t.clock.setTimer(ms, () => (wakes++, fn())),
    };
    const r = new PathReporter({
      clock,
      peers: () => rows,
      send: async (v) => void sent.push(v.map((x) => x.peer)),
      onError: () => {},
    });
    const settle = async (ms: number) => {
      t.clock.advance(ms);
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };
    r.changed();
    await settle(0);
    await settle(5_000);
    // H settles 5 s after A; then steps every 500 ms move only latency.
    rows = [row(A, "a"), row(H, "hub1")];
    r.changed();
    await settle(0);
    wakes = 0;
    for (let ms = 5_000; ms < 2 * REFRESH_MS; ms += 500) {
      rows = [row(A, "a", { latencyMs: ms }), row(H, "hub1")];
      r.changed();
      await settle(500);
    }
    expect(sent).to.deep.equal([[A], [H], [A, H], [A, H]]);
    expect(wakes, "wake-ups in 55 idle seconds").to.equal(2);
    r.close();
  });

  it("a failed report is sent again with the next one; close() leaves no timer", async () => {
    let fail = true;
    const sent: string[][] = [];
    const errors: string[] = [];
    const r = new PathReporter({
      clock: t.clock,
      peers: () => [row(A, "a")],
      send: async (v) => {
        if (fail) throw new Error("registry away");
        sent.push(v.map((x) => x.peer));
      },
      onError: (e) => errors.push(e.message),
    });
    r.changed();
    t.clock.advance(0);
    await Promise.resolve();
    await Promise.resolve();
    expect(errors).to.deep.equal(["registry away"]);
    fail = false;
    r.changed();
    t.clock.advance(MIN_INTERVAL_MS);
    await Promise.resolve();
    expect(sent).to.deep.equal([[A]]);
    r.changed();
    r.close();
    expect(t.clock.pending()).to.equal(0);
  });
});

describe("daemon: path reports reach the registry", function () {
  this.timeout(30_000);
  const t = useFakeClock();
  let w: DaemonWorld;
  useDaemonWorld(t, (world) => (w = world));

  it("the registry holds, for every pair and both ends, the path `scope status` shows", async () => {
    const { nodes } = await w.mesh([
      { name: "a" },
      { name: "b", nat: "full-cone" },
      { name: "c", nat: "symmetric" },
    ]);
    await w.advance(MIN_INTERVAL_MS * 2, 50);
    const paths = await w.registry.paths();
    const wrong: string[] = [];
    for (const n of nodes)
      for (const p of n.status().peers) {
        const v = paths.find((x) => x.from === n.id && x.peer === p.id);
        if (v?.path !== p.path || v.family !== p.family)
          wrong.push(`${n.name} → ${p.name}: ${v?.path} vs ${p.path}`);
      }
    expect(wrong).to.deep.equal([]);
    expect(paths).to.have.length(6);
    await w.stop();
  });
});
