/**
 * Issue 10, acceptance 2: who is a hub is the admin's decision. A member's
 * own `role: hub` claim is stored as an edge; a hub token or `peer set
 * --role` makes a hub, and every member learns it from the record.
 */
import { expect } from "chai";
import { memberClient, newPeer, startRegistryProcess, type RegistryProcess } from "./harness.js";

describe("registry: peer roles are the admin's (real process)", function () {
  this.timeout(30_000);
  let reg: RegistryProcess;

  before(async () => {
    reg = await startRegistryProcess();
    await reg.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
  });
  after(async () => reg?.dispose());

  it("a member claiming role hub with an edge token is stored, listed and announced as an edge", async () => {
    const { token, role } = await reg.admin.createToken("corp", { uses: 5 });
    expect(role).to.equal("edge");
    const watcher = newPeer("watcher");
    await memberClient(reg, "corp", watcher.identity).join(token, watcher.input);
    const liar = newPeer("liar");
    const joined = await memberClient(reg, "corp", liar.identity).join(token, { ...liar.input, role: "hub" });
    expect(joined.self.role).to.equal("edge");
    // A re-join repeating the claim changes nothing either.
    const again = await memberClient(reg, "corp", liar.identity).join(token, { ...liar.input, role: "hub" });
    expect(again.self.role).to.equal("edge");
    // What other members read (and route by) is the stored record.
    const seen = await memberClient(reg, "corp", watcher.identity).listPeers();
    expect(seen.find((p) => p.name === "liar")?.role).to.equal("edge");
  });

  it("a hub token makes a hub; the admin can make it an edge again and an edge token re-join keeps that", async () => {
    const hubToken = await reg.admin.createToken("corp", { uses: 2, role: "hub" });
    expect(hubToken.role).to.equal("hub");
    const h = newPeer("hub1");
    const joined = await memberClient(reg, "corp", h.identity).join(hubToken.token, h.input);
    expect(joined.self.role).to.equal("hub");

    const demoted = await reg.admin.setPeer("corp", joined.self.id, { role: "edge" });
    expect(demoted.role).to.equal("edge");
    expect(demoted.updatedAt).to.be.at.least(joined.self.updatedAt);
    const edgeToken = await reg.admin.createToken("corp", {});
    const rejoined = await memberClient(reg, "corp", h.identity).join(edgeToken.token, {
      ...h.input,
      role: "hub",
    });
    expect(rejoined.self.role).to.equal("edge");

    const promoted = await reg.admin.setPeer("corp", joined.self.id, { role: "hub" });
    expect(promoted.role).to.equal("hub");
    const listed = await reg.admin.listPeers("corp");
    expect(listed.find((p) => p.id === joined.self.id)?.role).to.equal("hub");
  });

  it("peer set refuses an unknown role and an unknown peer with a 4xx", async () => {
    const bad = await reg.admin
      .setPeer("corp", "0123456789abcdef", { role: "boss" as "hub" })
      .catch((e: Error & { code?: string }) => e);
    expect(bad).to.be.instanceOf(Error);
    expect((bad as { code?: string }).code).to.equal("bad_request");
    const gone = await reg.admin
      .setPeer("corp", "0123456789abcdef", { role: "hub" })
      .catch((e: Error & { code?: string }) => e);
    expect((gone as { code?: string }).code).to.equal("not_found");
  });
});
