import { expect } from "chai";
import { betterPath, chooseEndpoint, type PathCandidate } from "../../../src/core/path.js";

const c = (endpoint: string, rttMs: number | null, extra: Partial<PathCandidate> = {}): PathCandidate => ({
  endpoint,
  family: endpoint.startsWith("[") ? "ipv6" : "ipv4",
  kind: "reflexive",
  source: rttMs === null ? "guessed" : "answered",
  shifted: false,
  rttMs,
  probes: [],
  private: endpoint.startsWith("10."),
  ...extra,
});

describe("betterPath", () => {
  const rows: [string, PathCandidate, PathCandidate, boolean][] = [
    ["answered beats silent", c("1.1.1.1:1", 50), c("[2001:db8::1]:1", null), true],
    ["silent loses to answered", c("[2001:db8::1]:1", null), c("1.1.1.1:1", 50), false],
    ["both silent: IPv6 first", c("[2001:db8::1]:1", null), c("1.1.1.1:1", null), true],
    ["both answered: IPv6 within allowance wins", c("[2001:db8::1]:1", 19), c("1.1.1.1:1", 10), true],
    ["both answered: IPv6 much slower loses", c("[2001:db8::1]:1", 40), c("1.1.1.1:1", 10), false],
    ["both answered: IPv4 much faster wins", c("1.1.1.1:1", 10), c("[2001:db8::1]:1", 40), true],
    ["same family: lower rtt wins", c("1.1.1.1:1", 10), c("2.2.2.2:1", 20), true],
    ["same family, same rtt: public before private", c("1.1.1.1:1", 10), c("10.0.0.1:1", 10), true],
    [
      "same rtt: reported before reflexive",
      c("1.1.1.1:2", 10, { kind: "reported" }),
      c("1.1.1.1:1", 10),
      true,
    ],
    [
      "roamed before everything else equal",
      c("1.1.1.1:2", null, { kind: "roamed" }),
      c("1.1.1.1:1", null, { kind: "reported" }),
      true,
    ],
    ["total order: text decides last", c("1.1.1.1:1", null), c("1.1.1.1:2", null), true],
    ["irreflexive", c("1.1.1.1:1", 10), c("1.1.1.1:1", 10), false],
  ];
  for (const [name, a, b, want] of rows) it(name, () => expect(betterPath(a, b)).to.equal(want));
});

describe("chooseEndpoint (one evidence type: roamed > reported / answered / guessed)", () => {
  const ctx = { now: 100, failed: new Set<string>(), v6Deadline: 0, v4Answered: false, addsPeer: false };
  const roamed = c("203.0.113.9:52894", null, { kind: "roamed", source: "roamed" });
  const reported = c("203.0.113.9:52894", null, { kind: "reported", source: "reported" });
  const guess = c("203.0.113.9:51870", null);
  const answered = c("198.51.100.7:51820", 3);
  const shifted = c("203.0.113.9:51820", null, { shifted: true });
  const v6 = c("[2001:db8::7]:51820", null);
  const privateLan = c("10.2.0.12:51820", null, { kind: "local" });
  const rows: [string, PathCandidate[], Partial<typeof ctx>, string | undefined][] = [
    ["roamed beats an answered guess", [answered, roamed], {}, roamed.endpoint],
    ["roamed beats a silent IPv6 guess", [v6, roamed], { v6Deadline: 1_000 }, roamed.endpoint],
    [
      "a failed roamed endpoint gives way",
      [roamed, answered],
      { failed: new Set([roamed.endpoint]) },
      answered.endpoint,
    ],
    ["answered beats reported (no round trip of its own)", [reported, answered], {}, answered.endpoint],
    ["reported beats a silent guess", [guess, reported], {}, reported.endpoint],
    ["a shifted port is never steered to", [shifted], {}, undefined],
    ["a shifted port only in the apply that adds the peer", [shifted], { addsPeer: true }, shifted.endpoint],
    ["a shifted port gives way to a report", [shifted, reported], {}, reported.endpoint],
    ["a shifted port makes no private address worth a guess", [shifted, privateLan], {}, undefined],
    ["silent IPv6 first while its grace runs", [answered, v6], { v6Deadline: 1_000 }, v6.endpoint],
    ["answered IPv4 after IPv6's grace", [answered, v6], { v6Deadline: 50 }, answered.endpoint],
    ["nothing at all", [], {}, undefined],
  ];
  for (const [name, cands, extra, want] of rows)
    it(name, () => expect(chooseEndpoint(cands, { ...ctx, ...extra }).endpoint).to.equal(want));

  it("starts over when every candidate failed once", () => {
    const r = chooseEndpoint([guess], { ...ctx, failed: new Set([guess.endpoint]) });
    expect(r).to.deep.equal({ endpoint: guess.endpoint, startOver: true });
  });
});
