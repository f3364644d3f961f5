import { expect } from "chai";
import { useFakeClock } from "../helpers/fake-clock.js";
import type { DesiredPeer } from "../../../src/core/backend.js";
import { LISTEN_PORT, PROBE_PORT, SimWorld, type SimNode } from "../helpers/sim-world.js";
import { directMesh, directPair } from "./sim-pairs.js";
import type { SimNatKind } from "../helpers/simnet.js";

describe("join over a simulated network (fast profile)", () => {
  const t = useFakeClock();

  it("two public hosts go direct in well under a second, over IPv6", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a" });
    const b = w.add({ name: "b" });
    a.join();
    t.clock.advance(50);
    b.join();
    expect(t.clock.advanceUntil(() => w.allDirect(), 5_000)).to.be.lessThan(1_000);
    expect(b.peer("a")?.family).to.equal("ipv6");
    w.stop();
  });

  it("a mesh of every open NAT kind and a public host settles all pairs direct in < 1 s (IPv4 only)", () => {
    const w = new SimWorld(t.clock);
    const kinds: (SimNatKind | undefined)[] = [
      undefined,
      "full-cone",
      "address-restricted",
      "port-restricted",
      "port-restricted",
    ];
    const nodes = kinds.map((nat, i) => w.add({ name: `n${i}`, ...(nat ? { nat } : {}), v6: false }));
    for (const n of nodes) {
      n.join();
      const took = t.clock.advanceUntil(() => w.allDirect(), 5_000);
      expect(took, `join of ${n.host.name}`).to.be.lessThan(1_000);
    }
    expect(nodes[3]?.peer("n4")?.endpoint).to.match(/^203\.0\.113\.\d+:51820$/);
    // Nobody shares a LAN here: a private address must never reach WireGuard.
    for (const n of nodes)
      expect(
        [...n.wg.configured].filter((e) => e.startsWith("10.")),
        n.host.name,
      ).to.deep.equal([]);
    w.stop();
  });

  it("a port-shifting NAT goes direct once a public peer reports its WireGuard mapping", () => {
    const w = new SimWorld(t.clock);
    const pub = w.add({ name: "pub", v6: false });
    const pr = w.add({ name: "pr", nat: "port-restricted", v6: false });
    const ps = w.add({ name: "ps", nat: "port-shifting", v6: false });
    pub.join();
    pr.join();
    t.clock.advance(500);
    ps.join();
    const took = t.clock.advanceUntil(() => w.allDirect(), 20_000);
    expect(took).to.be.lessThan(3_000);
    expect(pr.peer("ps")?.endpoint).to.equal(`${ps.host.router?.wan}:${51820 ^ 0x400}`);
    w.stop();
  });

  // The demo bug (issue 9): public and full-cone edges kept a port-shifting
  // edge at its configured port while its NAT maps it elsewhere, and said
  // direct. Whatever the order of joins, the latency and how late applies
  // land, both must end on the NAT-mapped port, never steer to the
  // configured one, never try a private address, and never call the path
  // direct while WireGuard uses another endpoint.
  const orders = [
    ["pub", "fc", "ps"],
    ["ps", "pub", "fc"],
    ["fc", "ps", "pub"],
  ];
  for (const latency of [1, 5, 20])
    for (const applyDelay of [0, 7, 30])
      for (const order of orders)
        it(`public and full-cone edges reach a port-shifting peer at its mapped port (latency ${latency} ms, applies +${applyDelay} ms, joins ${order.join(" ")})`, () => {
          const w = new SimWorld(t.clock, latency);
          const nodes = {
            pub: w.add({ name: "pub", v6: false }),
            fc: w.add({ name: "fc", nat: "full-cone", v6: false }),
            ps: w.add({ name: "ps", nat: "port-shifting", v6: false }),
          };
          const ps = nodes.ps;
          const mapped = `${ps.host.router?.wan}:${LISTEN_PORT ^ 0x400}`;
          const guess = `${ps.host.router?.wan}:${LISTEN_PORT}`;
          // The configured port may only go into the apply that adds ps (its
          // initiation opens the sender's NAT; nothing can have roamed yet).
          const steeredToGuess: string[] = [];
          for (const n of Object.values(nodes)) {
            const [apply, trigger] = [n.wg.apply.bind(n.wg), n.wg.trigger.bind(n.wg)];
            const land = (d: DesiredPeer[]) => {
              const known = n.wg.peers.has(ps.wgKeys.publicKey);
              const e = d.find((p) => p.publicKey === ps.wgKeys.publicKey)?.endpoint;
              if (known && e === guess) steeredToGuess.push(`${n.host.name} at ${t.clock.now()}`);
              return apply(d);
            };
            n.wg.apply = land;
            if (applyDelay > 0) {
              // A backend that takes a while: applies and the triggers after them land late, in order.
              n.wg.apply = (d) => {
                t.clock.setTimer(applyDelay, () => n.running && land(d));
                return [];
              };
              n.wg.trigger = (k) => {
                t.clock.setTimer(applyDelay, () => n.running && trigger(k));
              };
            }
          }
          const inUse = (n: SimNode) => {
            const e = n.wg.peers.get(ps.wgKeys.publicKey)?.endpoint;
            return e ? `${e.address}:${e.port}` : undefined;
          };
          const lies: string[] = [];
          const honest = () => {
            for (const n of [nodes.pub, nodes.fc]) {
              // What the engine last read from WireGuard (stats lag by one poll).
              const seen = n.st.peers.get(ps.id)?.paths.wg.endpoint;
              if (n.peer("ps")?.path === "direct" && seen === inUse(n) && seen !== mapped)
                lies.push(`${n.host.name}: direct at ${seen}`);
            }
            return w.allDirect();
          };
          for (const name of order) {
            nodes[name as keyof typeof nodes].join();
            t.clock.advance(latency * 3);
          }
          expect(t.clock.advanceUntil(honest, 20_000), "all direct").to.be.lessThan(20_000);
          t.clock.advanceUntil(() => (honest(), false), 3_000);
          for (const n of [nodes.pub, nodes.fc]) {
            expect(n.peer("ps")?.endpoint, n.host.name).to.equal(mapped);
            expect(inUse(n), `${n.host.name}'s WireGuard`).to.equal(mapped);
            // Nor a private address of ps's LAN, which nobody here shares.
            expect([...n.wg.configured].filter((e) => e.startsWith("10."))).to.deep.equal([]);
          }
          expect(lies).to.deep.equal([]);
          expect(steeredToGuess, "steered to the configured port").to.deep.equal([]);
          w.stop();
        });

  it("keeps a working roamed endpoint when a peer republishes its candidates", () => {
    const specs = [
      { name: "pub", v6: false },
      { name: "pr", nat: "port-restricted", v6: false },
      { name: "ps", nat: "port-shifting", v6: false },
    ] as const;
    const { w, nodes } = directMesh(t.clock, [...specs], 10_000);
    const [pr, ps] = [nodes[1], nodes[2]];
    if (!pr || !ps) throw new Error("no nodes");
    const working = pr.peer("ps")?.endpoint;
    // ps restarts with one candidate more: pr starts a new attempt toward it.
    const record = w.registry.records.get(ps.id);
    if (!record) throw new Error("no record");
    const extra = { address: "10.200.0.1", port: 51821, kind: "local" as const };
    w.registry.updateSelf(ps.id, { candidates: [...record.candidates, extra] });
    t.clock.advance(20);
    expect(pr.peer("ps")?.endpoint).to.equal(working);
    expect(t.clock.advanceUntil(() => pr.peer("ps")?.path === "direct", 5_000)).to.be.lessThan(1_000);
    w.stop();
  });

  it("symmetric NAT on both sides settles as none with a reason, quickly", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "symmetric", v6: false });
    const b = w.add({ name: "b", nat: "symmetric", v6: false });
    a.join();
    b.join();
    t.clock.advanceUntil(() => w.settled(), 5_000);
    expect(a.peer("b")).to.include({
      path: "none",
      settled: true,
      reason: "both peers behind symmetric NAT",
    });
    expect(b.peer("a")).to.include({ path: "none", settled: true });
    w.stop();
  });

  it("symmetric to port-restricted is not direct, gives a reason, and keeps running", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "symmetric", v6: false });
    const b = w.add({ name: "b", nat: "port-restricted", v6: false });
    a.join();
    b.join();
    t.clock.advance(30_000);
    expect(b.peer("a")).to.include({ path: "none", settled: true, reason: "peer behind symmetric NAT" });
    expect(a.peer("b")).to.include({ path: "none", reason: "this host behind symmetric NAT" });
    w.stop();
  });

  it("the reason a settled peer is not direct follows the facts: probes answered after the give-up", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", v6: false });
    const b = w.add({ name: "b", v6: false });
    // b's WireGuard never answers; its probe socket is shut for the first 20 s.
    w.net.unbind(b.host, LISTEN_PORT);
    const probes = b.host.sockets.get(PROBE_PORT)!;
    w.net.unbind(b.host, PROBE_PORT);
    a.join();
    b.join();
    t.clock.advance(20_000);
    expect(a.peer("b")).to.include({ path: "none", settled: true, reason: "no answer on any candidate" });
    w.net.bind(b.host, PROBE_PORT, probes);
    t.clock.advance(40_000);
    expect(a.peer("b")).to.include({
      path: "none",
      settled: true,
      reason: "probes answered but no WireGuard handshake",
    });
    w.stop();
  });

  it("symmetric to public can go direct through WireGuard roaming", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "symmetric", v6: false });
    const b = w.add({ name: "b", v6: false });
    b.join();
    a.join();
    expect(t.clock.advanceUntil(() => w.allDirect(), 10_000)).to.be.lessThan(2_000);
    w.stop();
  });

  it("a port-shifting newcomer reaches a port-restricted peer whose IPv6 is black-holed in < 1 s", () => {
    // Only the reported WireGuard mapping works, and it has no probe round
    // trip of its own: the answer at the newcomer's IPv4 address must be
    // enough to leave the silent IPv6 candidate after its grace.
    const w = new SimWorld(t.clock);
    // IPv4-only, so its path with the newcomer shows the newcomer's IPv4 WireGuard mapping.
    const pub = w.add({ name: "pub", v6: false });
    const pr = w.add({ name: "pr", nat: "port-restricted", blackholeV6: true });
    const ps = w.add({ name: "ps", nat: "port-shifting" });
    pub.join();
    pr.join();
    t.clock.advanceUntil(() => w.allDirect(), 5_000);
    ps.join();
    const took = t.clock.advanceUntil(() => w.allDirect(), 20_000);
    expect(took).to.be.lessThan(1_000);
    expect(pr.peer("ps")?.endpoint).to.equal(`${ps.host.router?.wan}:${51820 ^ 0x400}`);
    w.stop();
  });

  it("prefers IPv6 behind NATs when both answer, and falls back to IPv4 when IPv6 is black-holed", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "port-restricted" });
    const b = w.add({ name: "b", nat: "port-restricted" });
    const c = w.add({ name: "c", nat: "port-restricted", blackholeV6: true });
    a.join();
    b.join();
    c.join();
    const took = t.clock.advanceUntil(() => w.allDirect(), 10_000);
    expect(took).to.be.lessThan(1_000);
    expect(a.peer("b")?.family).to.equal("ipv6");
    expect(a.peer("c")?.family).to.equal("ipv4");
    expect(c.peer("b")?.family).to.equal("ipv4");
    w.stop();
  });

  it("drops a departed peer at once", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "port-restricted" });
    const b = w.add({ name: "b", nat: "full-cone" });
    a.join();
    b.join();
    t.clock.advanceUntil(() => w.allDirect(), 5_000);
    b.leave();
    t.clock.advance(100);
    expect(a.status().peers).to.have.length(0);
    expect(a.wg.peers.size).to.equal(0);
    w.stop();
  });

  it("a peer settled without a direct path is tried at a slower pace (an endpoint per 10 s, not 2.5 s)", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a" });
    const b = w.add({ name: "b" });
    a.join();
    b.join();
    // b's WireGuard port is gone (a firewall): probes answer, handshakes never do.
    w.net.unbind(b.host, LISTEN_PORT);
    t.clock.advance(30_000);
    expect(a.peer("b")?.path).to.equal("none");
    const tries = () => a.logs.filter((l) => l.msg === "trying endpoint").length;
    const before = tries();
    t.clock.advance(60_000);
    expect(tries() - before).to.be.within(1, 7);
    w.stop();
  });

  it("a settled direct peer is probed at one answered target per round, not at every candidate", () => {
    const { w, a } = directPair(t.clock, { name: "a" }, { name: "b", nat: "full-cone" });
    t.clock.advance(60_000);
    let pings = 0;
    a.observe = (fx) => {
      for (const e of fx) if (e.type === "sendProbe" && e.bytes[5] === 1) pings++;
    };
    // (Under 180 s: the simulated WireGuard sends no keepalives, so its session would expire.)
    t.clock.advance(100_000);
    // Settled probes go every 60 s: two rounds, one ping each (dual-stack, several candidates).
    expect(pings).to.equal(2);
    expect(a.peer("b")?.latencyMs).to.be.a("number");
    w.stop();
  });

  it("settled probe rounds toward different peers share wake-ups (a 5 s grid)", () => {
    const { w, nodes } = directMesh(t.clock, [
      { name: "a" },
      { name: "b", nat: "full-cone" },
      { name: "c", nat: "port-restricted" },
      { name: "d", nat: "address-restricted" },
    ]);
    t.clock.advance(30_000);
    const at = new Set<number>();
    let pings = 0;
    nodes[0]!.observe = (fx) => {
      for (const e of fx)
        if (e.type === "sendProbe" && e.bytes[5] === 1) {
          pings++;
          at.add(t.clock.now());
        }
    };
    t.clock.advance(120_000);
    expect(pings).to.be.at.least(6);
    expect([...at].every((ms) => ms % 5_000 === 0)).to.equal(true);
    expect(at.size, "wake-ups with a ping").to.be.below(pings);
    w.stop();
  });

  it("reports carry only news: a WireGuard mapping the subject's record does not imply", () => {
    const w = new SimWorld(t.clock);
    const nodes = [
      w.add({ name: "pub", v6: false }),
      w.add({ name: "fc", nat: "full-cone", v6: false }),
      w.add({ name: "pr", nat: "port-restricted", v6: false }),
      w.add({ name: "ps", nat: "port-shifting", v6: false }),
    ];
    for (const n of nodes) n.join();
    expect(t.clock.advanceUntil(() => w.allDirect(), 20_000)).to.be.lessThan(5_000);
    t.clock.advance(10_000);
    const ps = nodes[3];
    const seen = nodes.flatMap((n) =>
      n.posted.flatMap(({ message: m }) =>
        m.type === "cc.ltgc.scope:peerReport" && !m.body.applied
          ? [`${n.host.name} → ${w.nodes.find((x) => x.st.self?.id === m.to)?.host.name}`]
          : [],
      ),
    );
    // Only the peers that receive the port-shifting edge's WireGuard traffic
    // at its shifted port (public, full cone) can say something it needs.
    expect(
      seen.every((x) => x.endsWith("→ ps")),
      seen.join(", "),
    ).to.equal(true);
    expect(seen.length).to.be.within(1, 3);
    expect(ps?.st.reportedSelf.length).to.be.greaterThan(0);
    w.stop();
  });

  it("a periodic netcheck that lost its reflector answers changes nothing (no re-announce, no restart)", () => {
    const w = new SimWorld(t.clock);
    const pub = w.add({ name: "pub", v6: false });
    const ps = w.add({ name: "ps", nat: "port-shifting", v6: true });
    const pr = w.add({ name: "pr", nat: "port-restricted", v6: false });
    for (const n of [pub, ps, pr]) n.join();
    expect(t.clock.advanceUntil(() => w.allDirect(), 20_000)).to.be.lessThan(5_000);
    const reported = ps.st.reportedSelf.length;
    expect(reported, "ps learned its WireGuard mapping").to.be.greaterThan(0);
    // Under load (40 joins on 2 cores) the answers of one netcheck get lost.
    const full = ps.netcheck();
    for (const lossy of [
      { ...full, ipv4: null, mapping: "unknown" as const, portPreserved: null },
      { ...full, ipv6: { reachable: false, public: null } },
    ]) {
      ps.dispatch({ type: "netcheck", report: lossy });
      t.clock.advance(3_000);
    }
    expect(ps.logs.filter((l) => l.msg.startsWith("addresses changed"))).to.deep.equal([]);
    expect(ps.st.reportedSelf).to.have.length(reported);
    expect(w.allDirect()).to.equal(true);
    w.stop();
  });

  it("re-converges within 5 s after a host moves behind another NAT", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "port-restricted", v6: false });
    const b = w.add({ name: "b", nat: "full-cone", v6: false });
    const c = w.add({ name: "c", v6: false });
    for (const n of [a, b, c]) n.join();
    t.clock.advanceUntil(() => w.allDirect(), 5_000);
    w.net.rehome(a.host, "address-restricted");
    a.dispatch({ type: "addressesChanged", addresses: a.host.addresses(), netcheck: a.netcheck() });
    t.clock.advance(10);
    expect(a.posted.length + b.posted.length).to.be.greaterThan(0);
    const took = t.clock.advanceUntil(
      () => w.allDirect() && b.peer("a")?.endpoint?.startsWith(a.host.router?.wan ?? "-") === true,
      10_000,
    );
    expect(took).to.be.lessThan(5_000);
    w.stop();
  });

  it("a new local address (docker0, a VPN) re-announces but leaves working sessions alone, on both sides", () => {
    const pr = { name: "a", nat: "port-restricted", v6: false } as const;
    const { w, a, b } = directPair(t.clock, pr, { name: "b", nat: "full-cone", v6: false });
    const triggered: string[] = [];
    for (const n of [a, b]) {
      const trigger = n.wg.trigger.bind(n.wg);
      n.wg.trigger = (key) => {
        triggered.push(`${n.host.name} ${key}`);
        trigger(key);
      };
    }
    const before = a.posted.length;
    a.dispatch({
      type: "addressesChanged",
      addresses: [...a.host.addresses(), "10.99.0.1"],
      netcheck: a.netcheck(),
    });
    t.clock.advance(3_000);
    expect(triggered).to.deep.equal([]);
    expect(w.allDirect()).to.equal(true);
    expect(a.status().peers[0]?.path).to.equal("direct");
    expect(b.status().peers[0]?.path).to.equal("direct");
    // The new address was announced, so b saw a peerUpdate and still did not restart.
    expect(b.peer("a")).to.not.equal(undefined);
    expect(a.posted.length).to.be.at.least(before);
    w.stop();
  });

  it("re-converges within 5 s when a host behind a port-restricted NAT moves behind another one", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "port-restricted", v6: false });
    const b = w.add({ name: "b", nat: "port-restricted", v6: false });
    a.join();
    b.join();
    t.clock.advanceUntil(() => w.allDirect(), 5_000);
    w.net.rehome(a.host, "port-restricted");
    a.dispatch({ type: "addressesChanged", addresses: a.host.addresses(), netcheck: a.netcheck() });
    const moved = () => b.peer("a")?.endpoint === `${a.host.router?.wan}:51820`;
    expect(t.clock.advanceUntil(() => w.allDirect() && moved(), 10_000)).to.be.lessThan(5_000);
    w.stop();
  });

  const moves: [SimNatKind, SimNatKind, number, number][] = [
    ["port-restricted", "port-restricted", 1_000, 1_000],
    ["port-restricted", "full-cone", 1_000, 1_000],
    // Port-shifting needs a report from the public host first: one more round trip.
    ["port-shifting", "port-restricted", 1_000, 1_500],
  ];
  for (const [na, nb, joinMs, moveMs] of moves) {
    it(`${na} joined by ${nb} (with a public host): direct < ${joinMs} ms, moved < ${moveMs} ms`, () => {
      const w = new SimWorld(t.clock);
      const pub = w.add({ name: "pub", v6: false });
      const a = w.add({ name: "a", nat: na, v6: false });
      const b = w.add({ name: "b", nat: nb, v6: false });
      pub.join();
      t.clock.advance(100);
      a.join();
      t.clock.advance(100);
      b.join();
      expect(
        t.clock.advanceUntil(() => w.allDirect(), 20_000),
        "join",
      ).to.be.lessThan(joinMs);
      w.net.rehome(a.host, na);
      a.dispatch({ type: "addressesChanged", addresses: a.host.addresses(), netcheck: a.netcheck() });
      const moved = () =>
        w.allDirect() && b.peer("a")?.endpoint?.startsWith(`${a.host.router?.wan}:`) === true;
      expect(t.clock.advanceUntil(moved, 20_000), "migration").to.be.lessThan(moveMs);
      w.stop();
    });
  }

  it("a daemon restart adopts live tunnels without changing them", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a", nat: "port-restricted" });
    const b = w.add({ name: "b", nat: "port-restricted" });
    a.join();
    b.join();
    t.clock.advanceUntil(() => w.allDirect(), 5_000);
    const before = JSON.stringify(a.wg.stats());
    a.restart();
    expect(a.peer("b")?.path).to.equal("direct");
    expect(JSON.stringify(a.wg.stats())).to.equal(before);
    w.stop();
  });
});

describe("join over a simulated network (seed profile)", () => {
  const t = useFakeClock();

  it("reproduces the seed timeline: reports at 16 s, peerConn at 20 s", () => {
    const w = new SimWorld(t.clock, 0);
    const a = w.add({ name: "a", nat: "port-restricted" }, "seed");
    const b = w.add({ name: "b", nat: "full-cone" }, "seed");
    a.join();
    t.clock.advance(30_000);
    const t0 = t.clock.now();
    b.join();
    t.clock.advance(25_000);
    const conn = b.posted.filter((p) => p.message.type === "cc.ltgc.scope:peerConn");
    expect(conn.map((p) => p.at - t0)).to.deep.equal([20_000]);
    const reports = a.posted.filter((p) => p.message.type === "cc.ltgc.scope:peerReport" && p.at >= t0);
    expect(reports[0]?.at).to.equal(t0 + 16_000);
    expect(a.peer("b")?.path).to.equal("direct");
    w.stop();
  });
});
