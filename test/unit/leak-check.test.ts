/**
 * The pending-timer check of useFakeClock() must be able to fail (STYLE.md,
 * "Leak checks"): a test that ends with a timer pending, stopped world or
 * not, is caught.
 */
import { expect } from "chai";
import { FakeClock, leakCheck, useFakeClock } from "./helpers/fake-clock.js";
import { SimWorld } from "./helpers/sim-world.js";
import { SimWg } from "./helpers/sim-wg.js";

describe("leak check (useFakeClock)", () => {
  const t = useFakeClock();

  it("fails a passed test that left a timer pending, and clears the clock", () => {
    const clock = new FakeClock();
    clock.setTimer(1_000, () => undefined);
    expect(() => leakCheck(clock, { state: "passed", title: "leaky" })).to.throw(
      /"leaky" ended with 1 timer\(s\) pending/,
    );
    expect(clock.pending()).to.equal(0);
  });

  it("lets a clean test pass, and keeps a failed test's own error", () => {
    const clock = new FakeClock();
    expect(() => leakCheck(clock, { state: "passed", title: "clean" })).not.to.throw();
    clock.setTimer(1_000, () => undefined);
    expect(() => leakCheck(clock, { state: "failed", title: "broken" })).not.to.throw();
    expect(clock.pending()).to.equal(0);
  });

  it("SimWorld.stop() leaves a component that did not stop to the check", () => {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a" });
    const b = w.add({ name: "b", nat: "full-cone" });
    a.join();
    b.join();
    t.clock.advanceUntil(() => w.allDirect(), 10_000);
    expect(w.allDirect()).to.equal(true);
    // Something outside the world that forgets to stop: a WireGuard device retrying a handshake.
    const stray = new SimWg(w.net, w.net.addHost({ name: "stray" }), 51820, "stray-key");
    stray.apply([{ publicKey: "nobody", endpoint: "198.51.100.99:51820", allowedIps: [] }]);
    w.stop();
    expect(t.clock.pending()).to.be.greaterThan(0);
    expect(() => leakCheck(t.clock, { state: "passed", title: "stray" })).to.throw(/timer\(s\) pending/);
    // The stray one stopped, the world is clean: this test itself passes the real check.
    stray.stop();
  });
});
