import { expect } from "chai";
import { engineStatus, step } from "../../../src/core/engine/index.js";
import { PAUSED_REASON } from "../../../src/core/engine/admin.js";
import { newProbeState, recordRtt } from "../../../src/core/engine/probing.js";
import { encodeProbe } from "../../../src/core/probe/codec.js";
import { probePairKey } from "../../../src/core/probe/mac.js";
import { APPLY_LANDING_MS } from "../../../src/core/timers.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { SimWorld, PROBE_PORT } from "../helpers/sim-world.js";
import { directMesh, directPair } from "./sim-pairs.js";

describe("join engine", () => {
  const t = useFakeClock();

  const joinedPair = () => directPair(t.clock, { name: "a" }, { name: "b" });

  it("ignores forged, wrong-key and replayed probes: no effect, no state change", () => {
    const { w, a, b } = joinedPair();
    const from = { address: b.host.v4, port: PROBE_PORT };
    const key = probePairKey(b.identity.secretKey, b.identity.publicKey, a.identity.publicKey);
    const ping = { type: "ping" as const, sender: b.id, nonce: "00000000deadbeef", time: t.clock.now() };
    const good = encodeProbe(ping, key);
    const wrongKey = encodeProbe(ping, new Uint8Array(32));
    const forgedPong = encodeProbe(
      {
        type: "pong",
        sender: b.id,
        nonce: "00000000deadbeee",
        time: t.clock.now(),
        echoNonce: "0000000000000001",
        observed: from,
      },
      new Uint8Array(32),
    );
    const peerB = () => a.st.peers.get(b.id);
    const before = JSON.stringify([...(peerB()?.probe.answers ?? [])]);
    for (const bytes of [wrongKey, forgedPong, new Uint8Array(5)]) {
      expect(
        step(a.st, { type: "probeReceived", from, bytes }, t.clock.now()).effects.filter(
          (e) => e.type !== "setTimer",
        ),
      ).to.deep.equal([]);
    }
    const first = step(a.st, { type: "probeReceived", from, bytes: good }, t.clock.now()).effects;
    expect(first.filter((e) => e.type === "sendProbe")).to.have.length(1);
    const replay = step(a.st, { type: "probeReceived", from, bytes: good }, t.clock.now()).effects;
    expect(
      replay.filter((e) => e.type === "sendProbe"),
      "replayed ping answered",
    ).to.have.length(0);
    const stale = encodeProbe({ ...ping, nonce: "00000000deadbee0", time: t.clock.now() - 60_000 }, key);
    expect(
      step(a.st, { type: "probeReceived", from, bytes: stale }, t.clock.now()).effects.filter(
        (e) => e.type === "sendProbe",
      ),
    ).to.have.length(0);
    expect(JSON.stringify([...(peerB()?.probe.answers ?? [])])).to.equal(before);
    w.stop();
  });

  it("a rejected probe returns before any reconcile: no effect at all, not even pruning", () => {
    const { w, a, b } = joinedPair();
    const from = { address: b.host.v4, port: PROBE_PORT };
    const key = probePairKey(b.identity.secretKey, b.identity.publicKey, a.identity.publicKey);
    const now = t.clock.now();
    const ping = { type: "ping" as const, sender: b.id, nonce: "00000000feedf00d", time: now };
    // Pruning is overdue: any reconcile would do it now, a rejected probe must not.
    a.st.probes.prunedAt = 0;
    const junk = [
      encodeProbe(ping, new Uint8Array(32)), // bad MAC
      encodeProbe({ ...ping, sender: "00000000000000ff" }, key), // unknown sender
      new Uint8Array(5),
    ];
    for (const bytes of junk)
      expect(step(a.st, { type: "probeReceived", from, bytes }, now).effects).to.deep.equal([]);
    // Stale (genuine, but a minute old): only the one line that says the clock is off.
    const stale = encodeProbe({ ...ping, nonce: "00000000feedf00e", time: now - 60_000 }, key);
    expect(
      step(a.st, { type: "probeReceived", from, bytes: stale }, now).effects.map((e) => e.type),
    ).to.deep.equal(["log"]);
    const good = encodeProbe(ping, key);
    step(a.st, { type: "probeReceived", from: { address: "192.0.2.99", port: 1 }, bytes: good }, now);
    // replayed: the nonce is seen now
    expect(step(a.st, { type: "probeReceived", from, bytes: good }, now).effects).to.deep.equal([]);
    expect(a.st.probes.prunedAt, "a reconcile ran").to.equal(0);
    w.stop();
  });

  it("probes refused for clock skew are counted, logged once, shown in status, and cleared by a fresh one", () => {
    const { w, a, b } = joinedPair();
    const from = { address: b.host.v4, port: PROBE_PORT };
    const key = probePairKey(b.identity.secretKey, b.identity.publicKey, a.identity.publicKey);
    const now = t.clock.now();
    const skewed = (i: number) =>
      encodeProbe({ type: "ping", sender: b.id, nonce: `0000000000c0ffe${i}`, time: now + 120_000 }, key);
    const logs = [0, 1, 2].flatMap((i) =>
      step(a.st, { type: "probeReceived", from, bytes: skewed(i) }, now).effects.filter(
        (e) => e.type === "log",
      ),
    );
    expect(logs.map((e) => (e.type === "log" ? e.msg : ""))).to.deep.equal([
      "probes from b rejected: clock off by 120 s",
    ]);
    const ps = a.st.peers.get(b.id);
    expect(ps?.probe.skewRejected).to.equal(3);
    const shown = engineStatus(a.st).peers.find((p) => p.name === "b");
    expect(shown?.clockOffS).to.equal(120);
    const fresh = encodeProbe({ type: "ping", sender: b.id, nonce: "0000000000c0ffee", time: now }, key);
    step(a.st, { type: "probeReceived", from, bytes: fresh }, now);
    expect(engineStatus(a.st).peers.find((p) => p.name === "b")?.clockOffS).to.equal(undefined);
    w.stop();
  });

  it("a valid pong looks at its own peer only: no walk over the peer set", () => {
    const specs = Array.from({ length: 6 }, (_, i) => ({ name: `n${i}`, v6: false }));
    const { w, nodes } = directMesh(t.clock, specs);
    const [a, b] = [nodes[0], nodes[1]];
    if (!a || !b) throw new Error("no nodes");
    const key = probePairKey(b.identity.secretKey, b.identity.publicKey, a.identity.publicKey);
    // An outstanding ping of a to b, as a probe round would leave it.
    const nonce = "00000000abcdef01";
    a.st.probes.pingsOut.set(nonce, {
      peerId: b.id,
      to: `${b.host.v4}:${PROBE_PORT}`,
      sentAt: t.clock.now() - 1,
    });
    let walks = 0;
    const peers = a.st.peers;
    for (const m of ["values", "entries", "keys", "forEach", Symbol.iterator] as const) {
      const f = (peers as unknown as Record<PropertyKey, (...x: unknown[]) => unknown>)[m];
      if (!f) continue;
      Object.defineProperty(peers, m, {
        value: (...x: unknown[]) => {
          walks++;
          return f.apply(peers, x);
        },
        configurable: true,
      });
    }
    const observed = { address: a.host.v4, port: PROBE_PORT };
    const pong = {
      type: "pong" as const,
      sender: b.id,
      nonce: "00000000abcdef02",
      time: t.clock.now(),
      echoNonce: nonce,
      observed,
    };
    step(
      a.st,
      {
        type: "probeReceived",
        from: { address: b.host.v4, port: PROBE_PORT },
        bytes: encodeProbe(pong, key),
      },
      t.clock.now(),
    );
    expect(a.st.peers.get(b.id)?.probe.answers.size, "the pong counted").to.be.greaterThan(0);
    expect(walks, "walks over the peer set").to.equal(0);
    w.stop();
  });

  it("never answers a valid ping that comes from an address the peer does not use (no reflection)", () => {
    const { w, a, b } = joinedPair();
    const key = probePairKey(b.identity.secretKey, b.identity.publicKey, a.identity.publicKey);
    const ping = { type: "ping" as const, sender: b.id, nonce: "00000000cafef00d", time: t.clock.now() };
    const stranger = { address: "192.0.2.99", port: 4444 };
    const fx = step(
      a.st,
      { type: "probeReceived", from: stranger, bytes: encodeProbe(ping, key) },
      t.clock.now(),
    );
    expect(fx.effects.filter((e) => e.type === "sendProbe")).to.have.length(0);
    expect(a.st.peers.get(b.id)?.probe.source).to.not.deep.equal(stranger);
    w.stop();
  });

  it("leaves the first handshake to WireGuard when an apply adds a peer with an endpoint (no trigger)", () => {
    // A trigger re-creates the peer a few ms after WireGuard's own initiation:
    // the receiver drops the second within 20 ms and the first's answer is lost.
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a" });
    const b = w.add({ name: "b" });
    a.join();
    b.join();
    let added = false;
    let triggeredAtAdd = false;
    a.observe = (fx) => {
      const adds = fx.some((e) => e.type === "applyPeers" && e.peers.some((p) => p.endpoint !== undefined));
      if (adds && !added) {
        added = true;
        triggeredAtAdd = fx.some((e) => e.type === "triggerHandshake");
      }
    };
    t.clock.advanceUntil(() => w.allDirect(), 5_000);
    expect(added).to.equal(true);
    expect(triggeredAtAdd).to.equal(false);
    w.stop();
  });

  it("configures no IPv4 guess for a peer behind a symmetric NAT, and no endpoint reported by others", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", v6: false });
    const s = w.add({ name: "s", nat: "symmetric", v6: false });
    // A hub: the one kind of peer whose reports about a third peer count at all.
    const h = w.add({ name: "h", v6: false }, "fast", "hub");
    h.join();
    s.join();
    t.clock.advance(2_000);
    a.join();
    const ps = a.st.peers.get(s.id);
    if (!ps) throw new Error("a does not know s");
    // The hub's view of s's WireGuard mapping (valid toward the hub only),
    // as a report and as a reported candidate in its record.
    const now = t.clock.now();
    const ev = { id: 1_000, network: "lab", ts: now, from: h.id };
    const about = { about: s.id, wgEndpoint: { address: s.host.v4, port: 1137 } };
    step(a.st, { type: "event", event: { ...ev, type: "cc.ltgc.scope:peerReport", body: about } }, now);
    const reported = { address: "203.0.113.77", port: 1138, kind: "reported" as const };
    const body = { ...ps.peer, candidates: [...ps.peer.candidates, reported] };
    step(a.st, { type: "event", event: { ...ev, id: 1_001, type: "cc.ltgc.scope:peerUpdate", body } }, now);
    expect(a.st.peers.get(s.id)?.paths.evidence.map((e) => e.source)).to.deep.equal(["reported"]);
    expect(a.st.peers.get(s.id)?.paths.endpoint).to.equal(undefined);
    t.clock.advance(5_000);
    // s initiates toward the public host; WireGuard roams to s's real mapping.
    expect(a.peer("s")?.path).to.equal("direct");
    expect(a.peer("s")?.endpoint).to.not.match(/:113[78]$/);
    w.stop();
  });

  it("ignores an ordinary member's report about a third peer; takes a hub's", () => {
    const w = new SimWorld(t.clock);
    const [a, b, m] = ["a", "b", "m"].map((name) => w.add({ name, v6: false }));
    const h = w.add({ name: "h", v6: false }, "fast", "hub");
    if (!a || !b || !m) throw new Error("nodes");
    for (const n of [a, b, m, h]) n.join();
    t.clock.advance(3_000);
    const now = t.clock.now();
    const blackHole = { address: "198.51.100.9", port: 9 };
    const report = (from: string, id: number) =>
      step(
        a.st,
        {
          type: "event",
          event: {
            id,
            network: "lab",
            ts: now,
            from,
            to: a.id,
            type: "cc.ltgc.scope:peerReport",
            body: { about: b.id, wgEndpoint: blackHole },
          },
        },
        now,
      );
    const reportedOfB = () =>
      a.st.peers
        .get(b.id)
        ?.paths.evidence.filter((e) => e.source === "reported")
        .map((e) => e.endpoint);
    report(m.id, 1_000);
    expect(reportedOfB()).to.deep.equal([]);
    report(h.id, 1_001);
    expect(reportedOfB()).to.deep.equal(["198.51.100.9:9"]);
    w.stop();
  });

  it("never calls a path direct while WireGuard uses an old choice of ours instead of the proven endpoint", () => {
    // A late apply of an endpoint we chose before (here the silent IPv6
    // guess) lands after WireGuard roamed to where the peer really is.
    const { w, a, b } = directPair(
      t.clock,
      { name: "a" },
      { name: "b", nat: "port-restricted", blackholeV6: true },
    );
    const ps = a.st.peers.get(b.id);
    const proven = ps?.paths.wg.endpoint;
    const old = ps?.applied.named.find((n) => n.endpoint !== proven)?.endpoint;
    if (!ps || !proven || !old) throw new Error("no abandoned choice");
    const stats = [
      {
        publicKey: b.wgKeys.publicKey,
        endpoint: old,
        lastHandshakeMs: ps.paths.wg.lastHandshakeMs,
        rxBytes: 0,
        txBytes: 0,
      },
    ];
    const fx = step(a.st, { type: "stats", stats }, t.clock.now()).effects;
    expect(a.peer("b")?.path, "direct while WireGuard is elsewhere").to.not.equal("direct");
    const applied = fx.flatMap((e) => (e.type === "applyPeers" ? e.peers : []));
    expect(applied.find((p) => p.publicKey === b.wgKeys.publicKey)?.endpoint).to.equal(proven);
    expect(t.clock.advanceUntil(() => w.allDirect(), 1_000)).to.be.lessThan(1_000);
    expect(a.peer("b")).to.include({ path: "direct", endpoint: proven });
    // Long after our last apply named it, WireGuard at that endpoint is a
    // real roam: trusted, not fought (no flapping between two endpoints).
    t.clock.advance(APPLY_LANDING_MS);
    const later = step(a.st, { type: "stats", stats: [{ ...stats[0], endpoint: old }] }, t.clock.now());
    expect(a.peer("b")).to.include({ path: "direct", endpoint: old });
    expect(
      later.effects.filter((e) => e.type === "applyPeers" && e.peers.some((p) => p.endpoint)),
    ).to.deep.equal([]);
    w.stop();
  });

  it("routes through a direct hub when two edges cannot go direct", () => {
    const w = new SimWorld(t.clock);
    const hub = w.add({ name: "hub", v6: false }, "fast", "hub");
    const a = w.add({ name: "a", nat: "symmetric", v6: false });
    const b = w.add({ name: "b", nat: "symmetric", v6: false });
    for (const n of [hub, a, b]) n.join();
    t.clock.advance(5_000);
    expect(a.peer("hub")?.path).to.equal("direct");
    expect(a.peer("b")).to.include({ path: "hub", reason: "both peers behind symmetric NAT" });
    const hubPeer = [...a.wg.peers.values()].find((p) => p.allowedIps.includes("10.88.0.0/16"));
    expect(hubPeer, "hub carries the network CIDR").to.not.equal(undefined);
    expect(a.wg.peers.get(b.wgKeys.publicKey)?.allowedIps).to.deep.equal([]);
    w.stop();
  });

  it("with a hub, symmetric ↔ port-restricted settles `hub` at once, with the reason", () => {
    const w = new SimWorld(t.clock);
    const hub = w.add({ name: "hub", v6: false }, "fast", "hub");
    const a = w.add({ name: "a", nat: "symmetric", v6: false });
    // b is dual-stack, a is not: no IPv6 in common (the demo's sym ↔ pr waited 15 s for that).
    const b = w.add({ name: "b", nat: "port-restricted" });
    for (const n of [hub, a, b]) n.join();
    t.clock.advance(1_000); // far below the 15 s give-up of a pair that might still go direct
    for (const [viewer, peer] of [
      [a, "b"],
      [b, "a"],
    ] as const) {
      expect(viewer.peer(peer), viewer.host.name).to.include({ path: "hub", settled: true, hub: "hub" });
      expect(viewer.peer(peer)?.reason).to.match(/symmetric/);
    }
    w.stop();
  });

  it("a newcomer routes through the hub from its first apply, before the hub is proven", () => {
    const w = new SimWorld(t.clock);
    const hub = w.add({ name: "hub", v6: false }, "fast", "hub");
    const a = w.add({ name: "a", nat: "full-cone", v6: false });
    hub.join();
    t.clock.advance(1_000);
    a.join();
    expect(a.peer("hub")?.path).to.not.equal("direct");
    expect(a.wg.peers.get(hub.wgKeys.publicKey)?.allowedIps).to.include("10.88.0.0/16");
    w.stop();
  });

  it("with a hub, a proven pair moves to direct on both sides together, and back to the hub when the direct path breaks", () => {
    const w = new SimWorld(t.clock);
    const hub = w.add({ name: "hub", v6: false }, "fast", "hub");
    const a = w.add({ name: "a", nat: "full-cone", v6: false });
    const b = w.add({ name: "b", nat: "full-cone", v6: false });
    for (const n of [hub, a, b]) n.join();
    const hostRoute = (n: typeof a, m: typeof a): boolean =>
      (n.wg.peers.get(m.wgKeys.publicKey)?.allowedIps ?? []).length > 0;
    const switched: Record<string, number> = {};
    for (let ms = 0; ms < 6_000 && Object.keys(switched).length < 2; ms += 10) {
      t.clock.advance(10);
      if (switched["a"] === undefined && hostRoute(a, b)) switched["a"] = t.clock.now();
      if (switched["b"] === undefined && hostRoute(b, a)) switched["b"] = t.clock.now();
    }
    expect(a.peer("b")?.path).to.equal("direct");
    expect(Math.abs((switched["a"] ?? 0) - (switched["b"] ?? Infinity))).to.be.at.most(20);
    t.clock.advance(3_000); // probes answered on the direct path
    expect(a.peer("b")?.path).to.equal("direct");
    // The two NATs stop passing anything between them; the hub still reaches both.
    const wan = (n: typeof a): string => n.host.router?.wan ?? n.host.v4;
    const [wa, wb] = [wan(a), wan(b)];
    w.net.blocked = (src, dst) =>
      (src.address === wa && dst.address === wb) || (src.address === wb && dst.address === wa);
    t.clock.advance(5_000);
    expect(a.peer("b")).to.include({ path: "hub", hub: "hub" });
    expect(b.peer("a")).to.include({ path: "hub", hub: "hub" });
    expect(a.wg.peers.get(b.wgKeys.publicKey)?.allowedIps).to.deep.equal([]);
    w.net.blocked = undefined;
    w.stop();
  });
});

describe("join engine, latency", () => {
  const t = useFakeClock();

  it("a round trip is the lowest of the last few answers, with fractions: it follows the path, not the first answer", () => {
    const p = newProbeState(0);
    recordRtt(p, "192.0.2.1:1", 26, 1);
    expect(p.answers.get("192.0.2.1:1")?.rttMs).to.equal(26);
    for (const [i, ms] of [0.9, 1.4, 0.62].entries()) recordRtt(p, "192.0.2.1:1", ms, 2 + i);
    expect(p.answers.get("192.0.2.1:1")?.rttMs).to.equal(0.62);
    for (let i = 0; i < 4; i++) recordRtt(p, "192.0.2.1:1", 3 + i, 10 + i);
    expect(p.answers.get("192.0.2.1:1")?.rttMs, "old answers age out").to.equal(3);
  });

  it("shows a latency for every direct pair, toward a symmetric NAT too, and keeps the shown endpoint", () => {
    const { w, nodes } = directMesh(t.clock, [
      { name: "pub", v6: false },
      { name: "sym", nat: "symmetric", v6: false },
      { name: "fc", nat: "full-cone", v6: false },
    ]);
    const shown = new Map<string, (string | null)[]>();
    for (let i = 0; i < 40; i++) {
      t.clock.advance(250);
      for (const n of nodes)
        for (const p of n.status().peers) {
          const k = `${n.host.name} → ${p.name}`;
          shown.set(k, [...(shown.get(k) ?? []), p.endpoint]);
          expect(p.path, k).to.equal("direct");
          expect(p.latencyMs, `${k} latency`).to.be.a("number");
        }
    }
    for (const [k, eps] of shown) expect(new Set(eps).size, `${k} endpoint flips: ${eps.join()}`).to.equal(1);
    w.stop();
  });
});

describe("join engine, admin: the user pauses the tunnel", () => {
  const t = useFakeClock();

  it("makes no applies, triggers or probes while paused, says so, and re-applies and re-attempts on resume", () => {
    const pr = { name: "a", nat: "port-restricted", v6: false } as const;
    const { w, a, b } = directPair(t.clock, pr, { name: "b", nat: "full-cone", v6: false });
    const seen: string[] = [];
    a.observe = (fx) => fx.forEach((e) => seen.push(e.type));
    a.dispatch({ type: "backendActive", active: false });
    expect(a.peer("b")).to.include({ path: "none", reason: PAUSED_REASON, latencyMs: null });
    // The user's NetworkManager took the interface down: WireGuard forgets everything.
    a.wg.apply([]);
    b.leave();
    const c = w.add({ name: "c", nat: "full-cone", v6: false });
    c.join(); // a new peer arrives while paused
    t.clock.advance(40_000);
    expect(
      seen.filter((e) => e === "applyPeers" || e === "triggerHandshake" || e === "sendProbe"),
    ).to.deep.equal([]);
    expect(a.peer("c")).to.include({ reason: PAUSED_REASON });
    a.dispatch({ type: "backendActive", active: true });
    expect(seen).to.include("applyPeers");
    expect(t.clock.advanceUntil(() => a.peer("c")?.path === "direct", 5_000)).to.be.lessThan(1_000);
    // c, settled long ago, sees the handshake at its next (slow) stats read.
    expect(t.clock.advanceUntil(() => w.allDirect(), 10_000)).to.be.at.most(5_000);
    w.stop();
  });
});

describe("join engine, seed profile", () => {
  const t = useFakeClock();

  it("falls back to IPv4 for a peer silent on IPv6 at 8 s, not before", () => {
    const w = new SimWorld(t.clock, 0);
    const a = w.add({ name: "a", nat: "port-restricted" }, "seed");
    const b = w.add({ name: "b", nat: "port-restricted", blackholeV6: true }, "seed");
    a.join();
    b.join();
    t.clock.advance(7_900);
    expect(a.peer("b")?.family).to.equal("ipv6");
    expect(a.peer("b")?.path).to.equal("pending");
    t.clock.advance(2_000);
    expect(a.peer("b")).to.include({ family: "ipv4", path: "direct" });
    w.stop();
  });
});

describe("join engine, resync", () => {
  const t = useFakeClock();

  it("a resync's peer list undoes neither what events told after it was asked for nor this host's own record", () => {
    const { w, a, b } = directPair(t.clock, { name: "a" }, { name: "b" });
    const self = a.st.self;
    const rec = a.st.peers.get(b.id)?.peer;
    if (!self || !rec) throw new Error("not joined");
    const ownCandidates = self.candidates;
    const stale = [{ address: "192.0.2.99", port: 51821, kind: "local" as const }];
    const list = [
      { ...self, candidates: stale, role: "hub" as const },
      { ...rec, candidates: stale },
    ];
    // b's record came by event after the list was asked for: the list's older record of b is not taken.
    step(a.st, { type: "resync", peers: list, newer: [b.id] }, t.clock.now());
    expect(a.st.peers.get(b.id)?.peer.candidates).to.deep.equal(rec.candidates);
    // Our candidates are ours to say; the role is the registry's.
    expect(a.st.self?.candidates).to.deep.equal(ownCandidates);
    expect(a.st.self?.role).to.equal("hub");
    // A peer that joined after the list was asked for is not dropped for missing from it.
    step(a.st, { type: "resync", peers: list.slice(0, 1), newer: [b.id] }, t.clock.now());
    expect(a.st.peers.has(b.id)).to.equal(true);
    // Without news of b, the list is the truth.
    step(a.st, { type: "resync", peers: list }, t.clock.now());
    expect(a.st.peers.get(b.id)?.peer.candidates).to.deep.equal(stale);
    step(a.st, { type: "resync", peers: list.slice(0, 1) }, t.clock.now());
    expect(a.st.peers.has(b.id)).to.equal(false);
    w.stop();
  });
});
