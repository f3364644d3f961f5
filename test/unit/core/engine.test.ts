import { expect } from "chai";
import { step } from "../../../src/core/engine/index.js";
import { encodeProbe } from "../../../src/core/probe/codec.js";
import { probePairKey } from "../../../src/core/probe/mac.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { SimWorld, PROBE_PORT } from "../helpers/sim-world.js";

describe("join engine", () => {
  const t = useFakeClock();

  function joinedPair() {
    const w = new SimWorld(t.clock);
    const a = w.add({ name: "a" });
    const b = w.add({ name: "b" });
    a.join();
    b.join();
    t.clock.advanceUntil(() => w.allDirect(), 5_000);
    return { w, a, b };
  }

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
    const before = JSON.stringify([...(peerB()?.answers ?? [])]);
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
    expect(JSON.stringify([...(peerB()?.answers ?? [])])).to.equal(before);
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
