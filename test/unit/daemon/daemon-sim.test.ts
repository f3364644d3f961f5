/**
 * Whole daemons (src/daemon/runtime.ts) with FakeBackends on the simulated
 * network, against an in-process registry, under fake time: what the lab
 * asserts, at a smaller scale.
 */
import { expect } from "chai";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PAUSED_REASON } from "../../../src/core/engine/admin.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { LISTEN_PORT, useDaemonWorld, type DaemonNode, type DaemonWorld } from "../helpers/daemon-world.js";
import type { SimHostSpec } from "../helpers/simnet.js";

describe("daemons in the simulator", function () {
  // Real work per fake millisecond (koa, SQLite, signatures): generous for a slow CI machine.
  this.timeout(30_000);
  const t = useFakeClock();
  let w: DaemonWorld;
  useDaemonWorld(t, (world) => (w = world));
  /** The nodes, every pair direct (asserted). */
  async function directMesh(...specs: SimHostSpec[]): Promise<DaemonNode[]> {
    const { nodes } = await w.mesh(specs);
    expect(w.allDirect(), w.logs()).to.equal(true);
    return nodes;
  }

  it("join: three daemons behind open NATs end with every pair direct", async () => {
    const { nodes, tookMs } = await w.mesh([
      { name: "a" },
      { name: "b", nat: "full-cone" },
      { name: "c", nat: "port-restricted" },
    ]);
    expect(w.allDirect(), w.logs()).to.equal(true);
    expect(tookMs).to.be.below(5_000);
    for (const n of nodes) {
      expect(n.daemon?.lifecycle).to.equal("member");
      expect(n.status().registry).to.equal("connected");
      // The backend was given both other peers, with endpoints.
      const peers = n.backend.last?.peers ?? [];
      expect(peers.map((p) => p.publicKey).sort()).to.deep.equal(
        nodes
          .filter((x) => x !== n)
          .map((x) => x.wgKeys.publicKey)
          .sort(),
      );
    }
    // Idle past the registry's SSE heartbeat (15 s, on the fake clock too): streams stay up, paths stay direct.
    await w.advance(20_000, 50);
    expect(w.allDirect()).to.equal(true);
    expect(w.logs()).to.not.include("event stream lost");
    await w.stop();
  });

  it("an overloaded registry drops the reports and the record update a port-shifting edge needs: re-sent, direct", async () => {
    // The scale lab (40 joins at once): posts got no answer in time, were
    // never sent again, and port-restricted/port-shifting pairs stayed none.
    // Here: the first two reports of ps's WireGuard mapping, and ps's first record update that carries it.
    const lost = { reports: 0, updates: 0 };
    w.registry.unanswered = (req) => {
      const body = req.body?.toString() ?? "";
      if (req.path.endsWith("/messages") && body.includes("wgEndpoint") && lost.reports < 2)
        return ++lost.reports > 0;
      if (req.method === "PUT" && body.includes('"reported"') && lost.updates < 1) return ++lost.updates > 0;
      return false;
    };
    const { tookMs } = await w.mesh(
      [
        { name: "pub", v6: false },
        { name: "pr", nat: "port-restricted", v6: false },
        { name: "ps", nat: "port-shifting", v6: false },
      ],
      20_000,
    );
    expect(w.allDirect(), w.logs()).to.equal(true);
    expect(lost).to.deep.equal({ reports: 2, updates: 1 });
    expect(tookMs).to.be.below(15_000);
    await w.stop();
  });

  it("leave: the departed daemon stops and removes its interface; the others drop it", async () => {
    const [a, b, c] = await directMesh(
      { name: "a" },
      { name: "b", nat: "full-cone" },
      { name: "c", nat: "address-restricted" },
    );

    await b.leave();
    expect(b.exitCode).to.equal(0);
    expect(b.daemon?.lifecycle).to.equal("stopped");
    expect(b.backend.closed).to.deep.equal({ remove: true });
    await w.advanceUntil(() => [a, c].every((n) => n.status().peers.length === 1), 5_000);
    for (const [n, other] of [
      [a, c],
      [c, a],
    ] as const) {
      expect(
        n.status().peers.map((p) => p.name),
        w.logs(),
      ).to.deep.equal([other.name]);
      expect(n.backend.last?.peers.map((p) => p.publicKey)).to.deep.equal([other.wgKeys.publicKey]);
    }
    expect(w.allDirect()).to.equal(true);
    await w.stop();
  });

  it("migration: a host moves behind another NAT; every pair is direct again, on its new address", async () => {
    const [a, b, c] = await directMesh(
      { name: "a", v6: false },
      { name: "b", nat: "full-cone", v6: false },
      { name: "c", nat: "port-restricted", v6: false },
    );
    const before = a.peer("c")?.endpoint;

    w.net.rehome(c.host, "full-cone");
    const wan = c.host.router?.wan ?? "";
    const moved = () =>
      w.allDirect() && [a, b].every((n) => n.peer("c")?.endpoint === `${wan}:${LISTEN_PORT}`);
    const took = await w.advanceUntil(moved, 20_000);
    expect(moved(), w.logs()).to.equal(true);
    expect(before).to.not.equal(a.peer("c")?.endpoint);
    expect(took).to.be.below(10_000);
    expect(c.logs.some((l) => l.includes("local addresses changed"))).to.equal(true);
    await w.stop();
  });

  it("record updates go out one at a time, in order, even when the registry answers late", async () => {
    const [a, b, c] = await directMesh(
      { name: "a", v6: false },
      { name: "b", nat: "full-cone", v6: false },
      { name: "c", nat: "port-restricted", v6: false },
    );
    // Every record update takes 3 s: the move's candidates and the netcheck after it would overlap.
    w.registry.lateBy = (req) => (req.method === "PUT" ? 3_000 : 0);
    w.registry.maxInFlight.clear();
    w.net.rehome(c.host, "full-cone");
    const wan = c.host.router?.wan ?? "";
    const moved = () =>
      w.allDirect() && [a, b].every((n) => n.peer("c")?.endpoint === `${wan}:${LISTEN_PORT}`);
    await w.advanceUntil(moved, 30_000);
    expect(moved(), w.logs()).to.equal(true);
    const puts = [...w.registry.maxInFlight].filter(([k]) => k.includes(" PUT "));
    expect(puts.length, "record updates seen").to.be.greaterThan(0);
    expect(Math.max(...puts.map(([, n]) => n)), "record updates in flight at once").to.equal(1);
    w.registry.lateBy = undefined;
    await w.advance(3_500, 50); // the last late answer
    await w.stop();
  });

  it("registry restart: daemons keep their paths, reconnect, resync, and a newcomer joins them all", async () => {
    const [a, b] = await directMesh({ name: "a" }, { name: "b", nat: "full-cone" });

    w.registry.stop();
    await w.advanceUntil(() => [a, b].every((n) => n.status().registry === "disconnected"), 5_000);
    await w.advance(3_000);
    // Tunnels stay as they are while the registry is away.
    expect(w.allDirect()).to.equal(true);
    await w.registry.start();
    const back = () => [a, b].every((n) => n.status().registry === "connected");
    const took = await w.advanceUntil(back, 5_000);
    expect(back(), w.logs()).to.equal(true);
    expect(took).to.be.below(2_000);
    expect(a.logs.some((l) => l.includes("resynced peer list"))).to.equal(true);

    const c = w.add({ name: "c", nat: "port-restricted" });
    await w.up(c);
    await w.advanceUntil(() => w.allDirect(), 10_000);
    expect(w.allDirect(), w.logs()).to.equal(true);
    expect(a.peer("c")?.path).to.equal("direct");
    await w.stop();
  });

  it("pause: the user switches a's tunnel off, the daemon stops applying; switched on, a catches up", async () => {
    const [a, b] = await directMesh({ name: "a" }, { name: "b", nat: "full-cone" });
    a.backend.setActive(false);
    const applies = a.backend.applies.length;
    const triggers = a.backend.triggers.length;
    const c = w.add({ name: "c", nat: "port-restricted" });
    await w.up(c);
    await w.advance(5_000);
    // a hears of c but leaves its (switched-off) backend alone.
    expect(a.backend.applies.length, w.logs()).to.equal(applies);
    expect(a.backend.triggers.length).to.equal(triggers);
    expect(a.status().peers.map((p) => p.reason)).to.deep.equal([PAUSED_REASON, PAUSED_REASON]);
    a.backend.setActive(true);
    await w.advanceUntil(() => w.allDirect(), 10_000);
    expect(w.allDirect(), w.logs()).to.equal(true);
    expect(a.backend.last?.peers.map((p) => p.publicKey)).to.include(c.wgKeys.publicKey);
    expect(b.peer("a")?.path).to.equal("direct");
    await w.stop();
  });

  /** Backend stats reads by node n over the next ms of fake time. */
  async function statsReadsOver(n: DaemonNode, ms: number): Promise<number> {
    let reads = 0;
    const stats = n.backend.stats.bind(n.backend);
    n.backend.stats = () => (reads++, stats());
    await w.advance(ms, 50);
    n.backend.stats = stats;
    return reads;
  }

  it("stats polls: every 5 s once all is direct or hopeless, every second while a settled peer could still go direct", async () => {
    const [a] = await directMesh({ name: "a" }, { name: "b" });
    await w.advance(5_000, 50);
    expect(await statsReadsOver(a!, 20_000)).to.be.within(3, 5);
    // c and d both behind symmetric NATs, no IPv6: hopeless with each other, direct with a and b.
    const c = w.add({ name: "c", nat: "symmetric", v6: false });
    const d = w.add({ name: "d", nat: "symmetric", v6: false });
    await w.up(c, d);
    const settled = (n: DaemonNode) => () => n.status().peers.every((p) => p.settled);
    await w.advanceUntil(settled(c), 30_000);
    const path = (n: DaemonNode, peer: string) => n.status().peers.find((p) => p.name === peer);
    expect(path(c, "d")?.reason).to.equal("both peers behind symmetric NAT");
    expect([path(c, "a")?.path, path(c, "b")?.path]).to.deep.equal(["direct", "direct"]);
    expect(await statsReadsOver(c, 20_000)).to.be.within(3, 5);
    // Port-restricted, no IPv6: not direct with c, but a WireGuard handshake of its own may still get through.
    const e = w.add({ name: "e", nat: "port-restricted", v6: false });
    await w.up(e);
    await w.advanceUntil(settled(c), 30_000);
    expect(path(c, "e")?.path).to.equal("none");
    expect(await statsReadsOver(c, 20_000)).to.be.within(17, 22);
    await w.stop();
  });

  it("join --foreground: the event stream and the peer list are read while the interface is still being made; status, peers and our record update only after it", async () => {
    const [a, b] = await directMesh({ name: "a" }, { name: "b", nat: "full-cone" });
    const c = w.add({ name: "c", nat: "port-restricted" });
    await c.join();
    let made = (): void => undefined;
    c.backendBusy = new Promise<void>((resolve) => (made = resolve));
    const dir = mkdtempSync(join(tmpdir(), "scope-sim-"));
    c.controlSocket = join(dir, "control.sock");
    const asked: string[] = [];
    w.registry.lateBy = (req) => {
      asked.push(`${req.method} ${req.path.replace(/^\/v1\/networks\/lab/, "")}`);
      return 0;
    };
    try {
      c.start();
      try {
        await w.advance(500);
        expect(asked).to.include("GET /peers");
        // Our record sets every peer probing toward us: not while we cannot answer.
        expect(asked).to.not.include("PUT /peers/self");
        expect(c.daemon?.lifecycle).to.equal("starting");
        expect(c.backend.applies).to.have.length(0);
        // A caller waiting for our status must find the interface (bench/join-hub.ts pings through it).
        expect(existsSync(c.controlSocket), "control socket before the interface").to.equal(false);
      } finally {
        made(); // else a failure here leaves the daemon waiting through the clean-up
        w.registry.lateBy = undefined;
      }
      await w.advanceUntil(() => w.allDirect(), 10_000);
      expect(w.allDirect(), w.logs()).to.equal(true);
      expect(existsSync(c.controlSocket)).to.equal(true);
      // The empty first apply (the interface) still comes before the engine's peers.
      expect(c.backend.applies[0]?.peers).to.deep.equal([]);
      expect(c.backend.last?.peers.map((p) => p.publicKey).sort()).to.deep.equal(
        [a, b].map((n) => n?.wgKeys.publicKey).sort(),
      );
      await w.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("start-up against a registry that is down: retries on the fake clock, stops at once when told", async () => {
    const a = w.add({ name: "a" });
    await a.join();
    w.registry.stop();
    a.start();
    await w.advance(7_000);
    expect(a.daemon?.lifecycle).to.equal("starting");
    expect(a.logs.filter((l) => l.includes("registry unreachable")).length).to.be.within(3, 5);
    // Even without a control socket: the interface was made early, nothing else runs.
    expect(a.backend.applies.length).to.equal(1);
    await a.stop();
    expect(a.daemon?.lifecycle).to.equal("stopped");
    expect(a.exitCode).to.equal(0);
    expect(a.backend.closed).to.deep.equal({ remove: false });
    await w.stop();
  });

  it("SIGTERM during a netcheck that does not come back: start-up gives up at once, nothing is left", async () => {
    const a = w.add({ name: "a" });
    await a.join();
    let netchecks = 0;
    a.netcheckHook = (signal) =>
      new Promise((_resolve, reject) => {
        netchecks++;
        signal.addEventListener("abort", () => reject(new Error("netcheck aborted")), { once: true });
      });
    a.start();
    await w.advance(3_000);
    expect(netchecks).to.equal(1);
    expect(a.daemon?.lifecycle).to.equal("starting");
    await a.stop();
    expect(a.daemon?.lifecycle).to.equal("stopped");
    expect(a.exitCode).to.equal(0);
    // Never a member: nothing was announced to the registry, no peer list read, no timer left.
    expect(a.logs.some((l) => l.includes("member of network"))).to.equal(false);
    await w.stop();
  });

  it("stop() leaves a daemon that did not stop to the leak check", async () => {
    const [, b] = await directMesh({ name: "a" }, { name: "b", nat: "full-cone" });
    // b is forgotten by the world: its daemon keeps its timers.
    w.nodes.splice(w.nodes.indexOf(b), 1);
    await w.stop();
    expect(t.clock.pending()).to.be.greaterThan(0);
    await b.stop();
    b.wg.stop();
    await w.settle();
    t.clock.advance(w.net.latencyMs);
    expect(t.clock.pending()).to.equal(0);
  });
});
