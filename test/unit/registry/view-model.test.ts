/**
 * The web view's data model (src/registry/ui/client/model.ts): rows per
 * directed view, one edge per pair drawn by its worse end, the why-not
 * text, and sorting with empty values last.
 */
import { expect } from "chai";
import type { ViewData } from "../../../src/core/protocol.js";
import { edgesOf, rowsOf, sortRows, whyNot } from "../../../src/registry/ui/client/model.js";

const id = (c: string) => c.repeat(16);
const VIEW: ViewData = {
  network: { name: "corp", cidr: "10.0.0.0/24", topology: "mesh" },
  now: 10_000,
  peers: [
    { id: id("a"), name: "alpha", address: "10.0.0.1", role: "edge", nat: "endpoint-dependent" },
    { id: id("b"), name: "beta", address: "10.0.0.2", role: "edge", nat: "endpoint-independent" },
    { id: id("c"), name: "hub", address: "10.0.0.3", role: "hub", nat: "none" },
  ],
  paths: [
    {
      from: id("a"),
      peer: id("b"),
      path: "hub",
      hub: id("c"),
      family: "ipv4",
      latencyMs: 4,
      handshakeAgeS: 2,
      pskEpoch: null,
      reason: "symmetric NAT on this side",
      reportedAt: 7_000,
    },
    {
      from: id("b"),
      peer: id("a"),
      path: "direct",
      hub: null,
      family: "ipv4",
      latencyMs: 3,
      handshakeAgeS: null,
      pskEpoch: 1,
      reason: null,
      reportedAt: 10_000,
    },
  ],
};

describe("web view model", () => {
  it("one row per directed view, with names, the hub's name and the handshake age as of now", () => {
    const rows = rowsOf(VIEW);
    expect(rows.map((r) => [r.fromName, r.toName, r.path, r.hubName])).to.deep.equal([
      ["alpha", "beta", "hub", "hub"],
      ["beta", "alpha", "direct", ""],
    ]);
    expect(rows[0]?.handshakeAgeS).to.equal(5); // 2 s at the report, reported 3 s ago
  });

  it("one edge per pair, drawn by its worse end, labelled with the hub; why-not names both ends' words", () => {
    const [e, ...more] = edgesOf(rowsOf(VIEW));
    expect(more).to.have.length(0);
    expect(e?.path).to.equal("hub");
    expect(e?.label).to.equal("via hub 3.0 ms");
    expect(whyNot(e!)).to.deep.equal(["alpha → beta: hub via hub (symmetric NAT on this side)"]);
  });

  it("sorts either way, empty values last", () => {
    const rows = rowsOf(VIEW);
    expect(sortRows(rows.slice(), "handshakeAgeS", false).map((r) => r.fromName)).to.deep.equal([
      "alpha",
      "beta",
    ]);
    expect(sortRows(rows.slice(), "handshakeAgeS", true).map((r) => r.fromName)).to.deep.equal([
      "alpha",
      "beta",
    ]);
    expect(sortRows(rows.slice(), "latencyMs", false).map((r) => r.fromName)).to.deep.equal([
      "beta",
      "alpha",
    ]);
    expect(sortRows(rows.slice(), "latencyMs", true).map((r) => r.fromName)).to.deep.equal(["alpha", "beta"]);
  });
});
