/**
 * Issue 14, acceptance 3: a member's word about another peer's endpoint
 * moves nothing. m is a full member (its daemon runs) that also posts
 * peerReports of its own making about a and b, pointing at a black hole.
 * The registry refuses those addressed to anyone but their subject; the
 * engine ignores a report about a third peer unless a hub sent it; and a
 * lie told to a about a's own mapping is only a candidate, which no probe
 * confirms. No apply ever names the black hole, and no pair leaves its
 * endpoint or its direct path.
 */
import { expect } from "chai";
import { RegistryClient } from "../../../src/client/registry-client.js";
import { ScopeError } from "../../../src/core/errors.js";
import type { Endpoint } from "../../../src/core/protocol.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { useDaemonWorld, type DaemonNode, type DaemonWorld } from "../helpers/daemon-world.js";

const BLACK_HOLE: Endpoint = { address: "198.51.100.9", port: 9 };

/** Who uses which endpoint for whom, as every daemon's status shows it. */
const paths = (nodes: DaemonNode[]) =>
  nodes.flatMap((n) =>
    n
      .status()
      .peers.map((p) => `${n.name}->${p.name} ${p.path} ${p.endpoint ?? "-"}`)
      .sort(),
  );

describe("daemons in the simulator: forged peerReports", function () {
  this.timeout(30_000);
  const t = useFakeClock();
  let w: DaemonWorld;
  useDaemonWorld(t, (world) => (w = world));

  it("a member reporting black-hole endpoints about others moves no endpoint and no path", async () => {
    // m is up first; a (behind a port-shifting NAT: reports are how its WireGuard mapping
    // becomes known) and b join while m lies to each about the other, and to everyone.
    const { nodes: first } = await w.mesh([{ name: "m", nat: "full-cone", v6: false }]);
    const m = first[0] as DaemonNode;
    const a = w.add({ name: "a", nat: "port-shifting", v6: false });
    const b = w.add({ name: "b", nat: "full-cone", v6: false });
    const hostile = new RegistryClient({
      url: "http://registry.sim:8470",
      network: "lab",
      identity: m.identity,
      clock: w.clock,
      transport: w.registry.transport(m.host.v4),
    });
    const outcomes = new Map<string, number>();
    const send = async (to: string | undefined, about: string, wgEndpoint: Endpoint) => {
      let outcome = "accepted";
      try {
        await hostile.postMessage({
          type: "cc.ltgc.scope:peerReport",
          ...(to === undefined ? {} : { to }),
          body: { about, wgEndpoint, path: "direct" },
        });
      } catch (e) {
        outcome = e instanceof ScopeError ? e.code : String(e);
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    };
    const forged = (n: DaemonNode): Endpoint[] => [
      BLACK_HOLE,
      // Plausible: the host's real public address, a port its NAT never gave out.
      { address: n.netcheck().ipv4?.public.address ?? BLACK_HOLE.address, port: 9 },
    ];
    await w.up(a, b);
    for (let round = 0; round < 20; round++) {
      for (const [to, about] of [
        [b, a],
        [a, b],
        [undefined, a],
        [undefined, b],
      ] as const) {
        for (const e of forged(about)) await send(to?.id, about.id, e);
      }
      await w.advance(250, 10);
    }
    hostile.close();
    await w.advanceUntil(() => w.allDirect(), 20_000);

    expect(w.allDirect(), w.logs()).to.equal(true);
    expect([...outcomes]).to.deep.equal([["forbidden", 160]]);
    const lies = new Set([a, b].flatMap((n) => forged(n).map((e) => `${e.address}:${e.port}`)));
    for (const n of [a, b, m]) {
      const named = n.backend.applies.flatMap((d) => d.peers.flatMap((p) => p.endpoint ?? []));
      expect(
        named.filter((e) => lies.has(e)),
        `${n.name} applied a forged endpoint`,
      ).to.deep.equal([]);
    }
    // Settled, the paths stay as they are.
    const settled = paths([a, b, m]);
    await w.advance(30_000, 50);
    expect(paths([a, b, m])).to.deep.equal(settled);
    await w.stop();
  });
});
