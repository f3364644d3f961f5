import { expect } from "chai";
import { betterPath, type PathCandidate } from "../../../src/core/path.js";

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
