import { expect } from "chai";
import { pickHub, type HubFacts } from "../../../src/core/engine/routing.js";
import { HUB_SILENT_MS } from "../../../src/core/timers.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { SimWorld, type SimNode } from "../helpers/sim-world.js";

const hub = (id: string, state: HubFacts["state"], rttMs: number | null = null): HubFacts => ({
  id,
  state,
  rttMs,
});

describe("routing: which hub an edge uses (pickHub)", () => {
  const rows: [string, HubFacts[], string | undefined, boolean, string | undefined, string | undefined][] = [
    // what, hubs, current, settling, want hub, want standby
    ["no hub at all", [], undefined, true, undefined, undefined],
    [
      "first pick among untried hubs: lowest id",
      [hub("b", "trying"), hub("a", "trying")],
      undefined,
      true,
      "a",
      "b",
    ],
    [
      "a proven hub beats one still tried",
      [hub("a", "trying", 1), hub("b", "proven", 30)],
      "a",
      false,
      "b",
      "a",
    ],
    ["lowest round trip first", [hub("a", "proven", 30), hub("b", "proven", 2)], undefined, true, "b", "a"],
    [
      "settling: a slightly faster hub does not take over",
      [hub("a", "proven", 5), hub("b", "proven", 4)],
      "a",
      true,
      "a",
      "b",
    ],
    [
      "settling: a clearly faster hub takes over",
      [hub("a", "proven", 50), hub("b", "proven", 2)],
      "a",
      true,
      "b",
      "a",
    ],
    [
      "settling: half the round trip but under the margin",
      [hub("a", "proven", 3), hub("b", "proven", 1)],
      "a",
      true,
      "a",
      "b",
    ],
    [
      "settled: even a clearly faster hub waits for the current to fail",
      [hub("a", "proven", 50), hub("b", "proven", 2)],
      "a",
      false,
      "a",
      "b",
    ],
    [
      "the current hub is dead: move to the standby",
      [hub("a", "dead", 1), hub("b", "proven", 40)],
      "a",
      false,
      "b",
      undefined,
    ],
    [
      "dead, and nothing else usable: stay (nothing better)",
      [hub("a", "dead", 1), hub("b", "dead")],
      "a",
      false,
      "a",
      undefined,
    ],
    [
      "the current hub left the network",
      [hub("b", "proven", 9), hub("c", "proven", 8)],
      "a",
      false,
      "c",
      "b",
    ],
    [
      "a dead hub is never a standby",
      [hub("a", "proven", 1), hub("b", "dead", 1), hub("c", "trying")],
      "a",
      false,
      "a",
      "c",
    ],
  ];
  for (const [what, hubs, current, settling, want, standby] of rows) {
    it(what, () => {
      expect(pickHub(hubs, current, settling)).to.deep.equal({ hub: want, standby });
    });
  }
});

const CIDR = "10.88.0.0/16";
/** Each edge is near one hub: 40 ms more each way toward the other. */
const FAR_MS = 40;

describe("routing: topology = tree, and hub fail-over (sim)", () => {
  const t = useFakeClock();

  /** Two public hubs, four edges behind port-restricted NATs, two near each hub. */
  function tree(topology: "tree" | "mesh" = "tree") {
    const w = new SimWorld(t.clock, 5, topology);
    const [h1, h2] = ["h1", "h2"].map((name) => w.add({ name, v6: false }, "fast", "hub")) as [
      SimNode,
      SimNode,
    ];
    const edges = ["e1", "e2", "e3", "e4"].map((name) =>
      w.add({ name, v6: false, nat: topology === "tree" ? "port-restricted" : "symmetric" }),
    ) as [SimNode, SimNode, SimNode, SimNode];
    const [e1, e2, e3, e4] = edges;
    const near = new Map<string, SimNode>([e1, e2, e3, e4].map((e, i) => [wan(e), i < 2 ? h1 : h2]));
    const hubOf = new Map([h1, h2].map((h) => [h.host.v4, h]));
    w.net.delayMs = (src, dst) => {
      const [edge, h] = near.has(src.address) ? [src, hubOf.get(dst.address)] : [dst, hubOf.get(src.address)];
      const home = near.get(edge.address);
      return h && home && h !== home ? FAR_MS : 0;
    };
    h1.join();
    h2.join();
    t.clock.advance(1_000);
    for (const e of edges) e.join();
    t.clock.advance(5_000);
    return { w, h1, h2, e1, e2, e3, e4, edges };
  }
  const wan = (n: SimNode): string => n.host.router?.wan ?? n.host.v4;
  const allowed = (n: SimNode, of: SimNode): string[] | undefined =>
    n.wg.peers.get(of.wgKeys.publicKey)?.allowedIps;
  const host = (n: SimNode): string => `${n.st.self?.address}/32`;
  const hubChanges = (n: SimNode, since: number): number =>
    n.logs.filter((l) => l.msg === "hub chosen" && l.at >= since).length;

  it("tree: edges attach to their nearest hub with the other as standby, peer only with hubs, and each hub routes the other hub's edges to it", () => {
    const { w, h1, h2, e1, e2, e3, e4, edges } = tree();
    for (const [e, home, standby] of [
      [e1, h1, h2],
      [e2, h1, h2],
      [e3, h2, h1],
      [e4, h2, h1],
    ] as const) {
      const self = e.status().self;
      expect(self, e.host.name).to.include({ hub: home.host.name, standby: standby.host.name });
      expect(
        [...e.wg.peers.keys()].sort(),
        `${e.host.name}: WireGuard peers are the hubs only`,
      ).to.deep.equal([h1.wgKeys.publicKey, h2.wgKeys.publicKey].sort());
      expect(allowed(e, home)).to.deep.equal([CIDR]);
      expect(allowed(e, standby)).to.deep.equal([]);
      expect(w.registry.records.get(e.id)?.attachedTo).to.equal(home.id);
    }
    expect(e1.peer("e3")).to.include({ path: "hub", hub: "h1", settled: true });
    // Each hub: its own edges on their entries, the other hub's edges on that hub's entry.
    expect(allowed(h1, h2)).to.have.members([host(h2), host(e3), host(e4)]);
    expect(allowed(h2, h1)).to.have.members([host(h1), host(e1), host(e2)]);
    expect(allowed(h1, e1)).to.deep.equal([host(e1)]);
    expect(allowed(h1, e3)).to.deep.equal([]);
    expect(h1.status().self?.relaysFor).to.deep.equal(["e1", "e2"]);
    expect(h2.status().self?.relaysFor).to.deep.equal(["e3", "e4"]);
    expect(edges.every((e) => e.status().peers.every((p) => p.settled))).to.equal(true);
    w.stop();
  });

  it("tree: a dead hub's edges move to their standby within 5 s, every hub follows, and its return pulls nobody back", () => {
    const { w, h1, h2, e1, e2, e3, e4 } = tree();
    t.clock.advance(10_000); // past the edges' settling time: from now on only a failure moves them
    const killedAt = t.clock.now();
    h1.stop(); // kill -9 and the interface down: nothing answers any more
    t.clock.advanceUntil(() => [e1, e2].every((e) => e.status().self?.hub === "h2"), 5_000);
    const movedMs = t.clock.now() - killedAt;
    expect(movedMs).to.be.at.most(5_000);
    t.clock.advance(100); // the announcements reach the hub
    expect(allowed(e1, h2)).to.deep.equal([CIDR]);
    expect(allowed(h2, e1)).to.deep.equal([host(e1)]);
    expect(allowed(h2, h1)).to.deep.equal([host(h1)]);
    // The edge retries its old hub at once, and gives up on it again when that stays silent.
    t.clock.advance(HUB_SILENT_MS + 500);
    expect(e1.status().self?.standby).to.equal(null);

    const back = t.clock.now();
    h1.wg.resume();
    h1.restart();
    t.clock.advance(30_000);
    for (const e of [e1, e2, e3, e4]) {
      expect(e.status().self?.hub, e.host.name).to.equal("h2");
      expect(hubChanges(e, back), `${e.host.name} moved after h1 came back`).to.equal(0);
    }
    expect(e1.status().self?.standby, "h1 is a standby again").to.equal("h1");
    // The returned hub learned the attachments from the registry: everyone is behind h2.
    expect(allowed(h1, h2)).to.have.members([host(h2), host(e1), host(e2), host(e3), host(e4)]);
    expect(h1.status().self?.relaysFor).to.deep.equal([]);
    w.stop();
  });

  it("mesh with two hubs: edges that need a hub move to the other when theirs dies", () => {
    const { w, h1, h2, e1, e3 } = tree("mesh");
    t.clock.advance(10_000);
    expect(e1.status().self).to.include({ hub: "h1", standby: "h2" });
    expect(e3.status().self).to.include({ hub: "h2", standby: "h1" });
    expect(e1.peer("e3")).to.include({ path: "hub", hub: "h1" });
    const killedAt = t.clock.now();
    h1.stop();
    t.clock.advanceUntil(() => e1.status().self?.hub === "h2", 5_000);
    expect(t.clock.now() - killedAt).to.be.at.most(5_000);
    expect(allowed(e1, h2)).to.deep.equal([CIDR]);
    expect(e1.peer("e3")).to.include({ path: "hub", hub: "h2" });
    expect(hubChanges(e3, killedAt), "e3's hub never changed").to.equal(0);
    w.stop();
  });
});
