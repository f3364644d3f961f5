import { expect } from "chai";
import { composeCandidates, computeNetcheck, type ReflectorObservation } from "../../../src/core/netcheck.js";

const server0 = { address: "192.0.2.1", port: 8470 };
const server1 = { address: "192.0.2.1", port: 8471 };
const obs = (reflector: 0 | 1, address: string, port: number): ReflectorObservation => ({
  reflector,
  server: reflector === 0 ? server0 : server1,
  observed: { address, port },
  rttMs: 3,
});

describe("netcheck", () => {
  const rows: [string, ReflectorObservation[], string, boolean | null][] = [
    ["public host", [obs(0, "198.51.100.5", 51821), obs(1, "198.51.100.5", 51821)], "none", null],
    [
      "port-preserving cone",
      [obs(0, "203.0.113.1", 51821), obs(1, "203.0.113.1", 51821)],
      "endpoint-independent",
      true,
    ],
    [
      "port-shifting cone",
      [obs(0, "203.0.113.1", 52845), obs(1, "203.0.113.1", 52845)],
      "endpoint-independent",
      false,
    ],
    ["symmetric", [obs(0, "203.0.113.1", 30001), obs(1, "203.0.113.1", 30002)], "endpoint-dependent", false],
    ["one answer only", [obs(0, "203.0.113.1", 51821)], "unknown", true],
    ["no answer", [], "unknown", null],
  ];
  for (const [name, o, mapping, preserved] of rows) {
    it(name, () => {
      const r = computeNetcheck({
        probePort: 51821,
        localAddresses: ["198.51.100.5", "10.0.0.5"],
        observations: o,
      });
      expect(r.mapping).to.equal(mapping);
      expect(r.portPreserved).to.equal(preserved);
    });
  }

  it("sees IPv6 and normalises mapped IPv4", () => {
    const r = computeNetcheck({
      probePort: 51821,
      localAddresses: ["10.0.0.5"],
      observations: [
        obs(0, "::ffff:203.0.113.1", 51821),
        obs(1, "203.0.113.1", 51821),
        obs(0, "2001:db8::5", 51821),
      ],
    });
    expect(r.ipv4?.public).to.deep.equal({ address: "203.0.113.1", port: 51821 });
    expect(r.ipv6).to.deep.equal({ reachable: true, public: { address: "2001:db8::5", port: 51821 } });
  });

  it("composes candidates: IPv6 first, reflexive only when it differs from a local one", () => {
    const netcheck = computeNetcheck({
      probePort: 51821,
      localAddresses: ["10.0.0.5"],
      observations: [obs(0, "203.0.113.1", 51821)],
    });
    const cands = composeCandidates({
      probePort: 51821,
      localAddresses: ["10.0.0.5", "2001:db8::5"],
      netcheck,
      reported: [],
    });
    expect(cands).to.deep.equal([
      { address: "2001:db8::5", port: 51821, kind: "local" },
      { address: "10.0.0.5", port: 51821, kind: "local" },
      { address: "203.0.113.1", port: 51821, kind: "reflexive" },
    ]);
  });
});
