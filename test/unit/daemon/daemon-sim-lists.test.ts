/**
 * Peer lists and the event stream under an overloaded registry (the scale
 * lab: 40 joins at once, answers 12 s late, streams reconnecting): a list
 * says how the peers were when the registry read it, the stream says what
 * changed since. Neither may undo the other.
 */
import { expect } from "chai";
import { useFakeClock } from "../helpers/fake-clock.js";
import { LISTEN_PORT, useDaemonWorld, type DaemonNode, type DaemonWorld } from "../helpers/daemon-world.js";
import type { HttpRequest } from "../../../src/client/http.js";

describe("daemons in the simulator: peer lists and the event stream", function () {
  this.timeout(60_000);
  const t = useFakeClock();
  let w: DaemonWorld;
  useDaemonWorld(t, (world) => (w = world));

  const isList = (req: HttpRequest): boolean => req.method === "GET" && req.path.endsWith("/peers");
  const from = (req: HttpRequest, n: DaemonNode): boolean => req.headers?.["x-scope-peer"] === n.id;
  /** Every other node sees n direct, at the WireGuard port of n's NAT now. */
  const seenAtWan = (n: DaemonNode) => () =>
    w.allDirect() &&
    w.nodes
      .filter((x) => x !== n)
      .every((x) => x.peer(n.name)?.endpoint === `${n.host.router?.wan}:${LISTEN_PORT}`);

  it("a resync's peer list read before a peer moved does not undo the move its peerUpdate told of", async () => {
    // Port-restricted on both sides of a–c: a must send to c's new mapping, or c's packets never get in.
    const { nodes } = await w.mesh([
      { name: "a", nat: "port-restricted", v6: false },
      { name: "b", nat: "full-cone", v6: false },
      { name: "c", nat: "port-restricted", v6: false },
    ]);
    expect(w.allDirect(), w.logs()).to.equal(true);
    w.registry.stop();
    await w.advanceUntil(() => nodes.every((n) => n.status().registry === "disconnected"), 5_000);
    // Back, but overloaded: a peer list is 4 s old when it arrives.
    w.registry.answerLateBy = (req) => (isList(req) ? 4_000 : 0);
    await w.registry.start();
    await w.advanceUntil(() => nodes.every((n) => n.status().registry === "connected"), 5_000);
    // Every daemon's resync is under way; c moves and says so at once (peerUpdate on the streams).
    const c = nodes[2] as DaemonNode;
    w.net.rehome(c.host, "port-restricted");
    // The lists land after the move was announced (and taken up: c is direct again at its new mapping).
    await w.advance(5_000, 10);
    w.registry.answerLateBy = undefined;
    const at = (n: DaemonNode, s: string) => Number(n.logs.find((l) => l.includes(s))?.split(" ")[0]);
    for (const n of nodes) expect(at(n, "resynced peer list"), n.name).to.be.above(at(c, "re-announcing"));
    const moved = seenAtWan(c);
    await w.advanceUntil(moved, 30_000);
    expect(moved(), w.logs()).to.equal(true);
    await w.stop();
  });

  it("a newcomer whose event stream connects after its peer list was read misses no record change in between", async () => {
    const [, b] = (
      await w.mesh([
        { name: "a", v6: false },
        { name: "b", nat: "port-restricted", v6: false },
      ])
    ).nodes as [DaemonNode, DaemonNode];
    expect(w.allDirect(), w.logs()).to.equal(true);
    const c = w.add({ name: "c", nat: "port-restricted", v6: false });
    // c's event stream takes 3 s to be taken in; its other requests are answered at once.
    w.registry.lateBy = (req) => (req.path.endsWith("/events") && from(req, c) ? 3_000 : 0);
    await w.up(c);
    // Meanwhile b moves: its peerUpdate is written before c's stream is there to carry it.
    w.net.rehome(b.host, "port-restricted");
    const moved = seenAtWan(b);
    await w.advanceUntil(moved, 30_000);
    expect(moved(), w.logs()).to.equal(true);
    w.registry.lateBy = undefined;
    await w.stop();
  });
});
