import { expect } from "chai";
import { likelyOffset } from "../../../src/core/engine/paths.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { SimWorld, type SimNode } from "../helpers/sim-world.js";

// Issue 10, acceptance 3: a pair moving from the hub to the direct path must
// switch on both sides at the same moment, because WireGuard's allowed IPs
// filter what comes in too: between the two switches, whatever either side
// sends is dropped by the other. The first side to see the handshake picks
// the moment and announces it in an upgrade probe; the announcement takes
// its time to arrive (here 40 ms more than the other probes), and the other
// side must meet the announced moment, not "when it arrived + the delay".
describe("upgrade from the hub to direct: both sides switch together (sim)", () => {
  const t = useFakeClock();

  it("the two switches land within a millisecond although the announcement took 45 ms", () => {
    const w = new SimWorld(t.clock, 5);
    const hub = w.add({ name: "hub", v6: false }, "fast", "hub");
    hub.join();
    t.clock.advance(1_000);
    const a = w.add({ name: "a", nat: "full-cone", v6: false });
    const b = w.add({ name: "b", nat: "full-cone", v6: false });
    const wanOf = (n: SimNode): string => n.host.router?.wan ?? n.host.v4;
    const pair = new Set([wanOf(a), wanOf(b)]);
    // Everything between the two edges is slow (probes and WireGuard alike); the hub is near both.
    w.net.delayMs = (src, dst) => (pair.has(src.address) && pair.has(dst.address) ? 40 : 0);
    a.join();
    // b's stats polls (where it sees handshakes) run out of phase with a's.
    t.clock.advance(37);
    b.join();
    const carries = (n: SimNode, of: SimNode): boolean =>
      n.wg.peers.get(of.wgKeys.publicKey)?.allowedIps.includes(`${of.st.self?.address}/32`) ?? false;
    const switched = new Map<string, number>();
    for (let ms = 0; ms < 20_000 && switched.size < 2; ms++) {
      t.clock.advance(1);
      if (!switched.has("a") && carries(a, b)) switched.set("a", t.clock.now());
      if (!switched.has("b") && carries(b, a)) switched.set("b", t.clock.now());
    }
    expect([...switched.keys()].sort(), "both sides switched to direct").to.deep.equal(["a", "b"]);
    const skew = Math.abs((switched.get("a") ?? 0) - (switched.get("b") ?? 0));
    expect(skew, `ms between the two switches`).to.be.at.most(1);
    w.stop();
  });
});

describe("upgrade: the peer's clock offset as a probe sample allows it (likelyOffset)", () => {
  // Seen in hub.test on one host's clock: a pong stamped after ~100 ms in a
  // busy event loop read as +50.6 ms; used as such it put 52 ms between the switches.
  const rows = [
    { offsetMs: 50.6, rttMs: 101.7, want: 0, why: "within half the round trip: taken as synced" },
    { offsetMs: -5.9, rttMs: 19, want: 0, why: "small and within the error" },
    { offsetMs: 200, rttMs: 20, want: 190, why: "beyond the error: the nearest value it allows" },
    { offsetMs: -30, rttMs: 20, want: -20, why: "the same, behind" },
  ];
  for (const r of rows)
    it(`${r.offsetMs} ms ± ${r.rttMs / 2} → ${r.want} (${r.why})`, () => {
      expect(likelyOffset(r)).to.be.closeTo(r.want, 1e-9);
    });
});
