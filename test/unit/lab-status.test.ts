import { expect } from "chai";
import { pairReachable, type MeshView, type Path, type PeerStatus, type ScopeStatus } from "../lab/status.js";

// What the demo counts as converged (issue 10: "every pair direct or via
// hub"), over hand-made status views: a hub H and edges a, b.

type Seen = [path: Path, hub?: string, settled?: boolean];

/** A mesh from "viewer>peer" → what the viewer's status says of the peer. */
function mesh(seen: Record<string, Seen>): MeshView {
  const out = new Map<string, ScopeStatus>();
  for (const [key, [path, hub, settled = true]] of Object.entries(seen)) {
    const [viewer = "", name = ""] = key.split(">");
    const peer: PeerStatus = {
      id: name,
      name,
      address: "10.88.0.9",
      path,
      endpoint: null,
      family: null,
      latencyMs: null,
      lastHandshakeMs: null,
      reason: path === "direct" ? null : "peer behind symmetric NAT",
      settled,
      psk: null,
      hub: path === "hub" ? (hub ?? "H") : null,
    };
    const st = out.get(viewer);
    const self = { id: viewer, name: viewer, address: "", listenPort: 0, nat: null, role: "edge" as const };
    out.set(viewer, { network: "lab", self, peers: [...(st?.peers ?? []), peer] });
  }
  return out;
}

const hubUp: Record<string, Seen> = {
  "a>H": ["direct"],
  "H>a": ["direct"],
  "b>H": ["direct"],
  "H>b": ["direct"],
};

describe("lab status: pairReachable (the demo's converged)", function () {
  const cases: [string, Record<string, Seen>, boolean][] = [
    ["both sides direct", { "a>b": ["direct"], "b>a": ["direct"] }, true],
    ["both via the hub, which is direct with both", { ...hubUp, "a>b": ["hub"], "b>a": ["hub"] }, true],
    // Still trying direct (not settled) beside the hub: the hub carries it.
    [
      "both via the hub while not settled",
      { ...hubUp, "a>b": ["hub", "H", false], "b>a": ["hub", "H", false] },
      true,
    ],
    ["one side direct, the other via the hub", { ...hubUp, "a>b": ["direct"], "b>a": ["hub"] }, false],
    [
      "via the hub, but the hub has no direct path to b yet",
      { ...hubUp, "H>b": ["pending"], "a>b": ["hub"], "b>a": ["hub"] },
      false,
    ],
    [
      "via the hub, but b's own path to the hub is not proven",
      { ...hubUp, "b>H": ["hub", "H"], "a>b": ["hub"], "b>a": ["hub"] },
      false,
    ],
    ["via two different hubs", { ...hubUp, "a>b": ["hub"], "b>a": ["hub", "G"] }, false],
    ["pending on one side", { ...hubUp, "a>b": ["hub"], "b>a": ["pending"] }, false],
    ["one side not listed", { ...hubUp, "a>b": ["direct"] }, false],
    ["the hub pair itself via a hub", { "a>H": ["hub", "H"], "H>a": ["direct"] }, false],
  ];
  for (const [what, seen, want] of cases)
    it(`${what}: ${want ? "reachable" : "not reachable"}, asked from either side`, function () {
      const m = mesh(seen);
      expect([pairReachable(m, "a", "b"), pairReachable(m, "b", "a")]).to.deep.equal([want, want]);
    });
  it("the hub's own pairs: direct both ways", function () {
    expect(pairReachable(mesh(hubUp), "a", "H")).to.equal(true);
  });
});
