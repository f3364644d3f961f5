/**
 * Acceptance 1: who may join and act. Only the valid join succeeds; every
 * other attempt gets a 4xx JSON {error, message}. Also: the join token never
 * reaches the logs, and a replay is refused even after a restart.
 */
import { expect } from "chai";
import { ScopeError } from "../../src/core/errors.js";
import { ErrorBody } from "../../src/core/protocol.js";
import { generateIdentity, type Identity } from "../../src/crypto/keys.js";
import { signRequest } from "../../src/crypto/signing.js";
import {
  describeStores,
  memberClient,
  newPeer,
  startRegistryProcess,
  type RegistryProcess,
} from "./harness.js";

async function rejects(p: Promise<unknown>): Promise<ScopeError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(ScopeError);
    return e as ScopeError;
  }
  throw new Error("expected a rejection");
}

/** A raw request, for what the client would never send. */
async function raw(
  reg: RegistryProcess,
  method: string,
  path: string,
  body: string,
  headers: Record<string, string>,
) {
  const r = await fetch(reg.url + path, { method, body: method === "GET" ? undefined : body, headers });
  const json = (await r.json()) as unknown;
  return { status: r.status, body: json };
}

describeStores("registry: join and member auth (real process)", function (store) {
  this.timeout(30_000);
  let reg: RegistryProcess;

  before(async () => {
    reg = await startRegistryProcess({ store });
    await reg.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
    await reg.admin.createNetwork({ name: "lab", cidr: "10.99.0.0/24" });
  });
  after(async () => reg?.dispose());

  it("joins with a valid token; a re-join with the same key keeps id and address", async () => {
    const { token } = await reg.admin.createToken("corp", { uses: 1 });
    const a = newPeer("alpha");
    const first = await memberClient(reg, "corp", a.identity).join(token, a.input);
    expect(first.self.address).to.equal("10.88.0.2"); // .1 is reserved
    expect(first.registryKey).to.have.length(44);
    // The token is used up now, but a member retrying its join is not a new join.
    const again = await memberClient(reg, "corp", a.identity).join(token, a.input);
    expect(again.self.id).to.equal(first.self.id);
    expect(again.self.address).to.equal(first.self.address);
  });

  it("refuses an expired, a used-up and a wrong-network token with 403 token_invalid", async () => {
    const expired = await reg.admin.createToken("corp", { uses: 5, expiresIn: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const b = newPeer();
    expect((await rejects(memberClient(reg, "corp", b.identity).join(expired.token, b.input))).code).to.equal(
      "token_invalid",
    );

    const once = await reg.admin.createToken("corp", { uses: 1 });
    const c = newPeer();
    await memberClient(reg, "corp", c.identity).join(once.token, c.input);
    const d = newPeer();
    const usedUp = await rejects(memberClient(reg, "corp", d.identity).join(once.token, d.input));
    expect(usedUp.code).to.equal("token_invalid");
    expect(usedUp.message).to.match(/used up/);

    const other = await reg.admin.createToken("lab", {});
    const e = newPeer();
    const wrong = await rejects(memberClient(reg, "corp", e.identity).join(other.token, e.input));
    expect(wrong.code).to.equal("token_invalid");
    expect(wrong.message).to.match(/another network/);
  });

  it("refuses a join signed by another key than the one in the body (no proof of possession)", async () => {
    const { token } = await reg.admin.createToken("corp", {});
    const victim = newPeer();
    const attacker: Identity = generateIdentity();
    const path = "/v1/networks/corp/join";
    const body = JSON.stringify({ token, peer: { ...victim.input, identityKey: victim.identity.publicKey } });
    const headers = {
      ...signRequest(attacker, "join", { method: "POST", path, body }, Date.now()),
      "content-type": "application/json",
    };
    const r = await raw(reg, "POST", path, body, headers);
    expect(r.status).to.equal(401);
    expect(ErrorBody.parse(r.body).error).to.equal("unauthorized");
  });

  it("refuses an unsigned request and a replayed one, also after a restart", async () => {
    const { token } = await reg.admin.createToken("corp", {});
    const p = newPeer();
    const joined = await memberClient(reg, "corp", p.identity).join(token, p.input);
    const path = "/v1/networks/corp/peers";

    const unsigned = await raw(reg, "GET", path, "", {});
    expect(unsigned.status).to.equal(401);
    expect(ErrorBody.parse(unsigned.body).error).to.equal("unauthorized");

    const headers = signRequest(p.identity, joined.self.id, { method: "GET", path, body: "" }, Date.now());
    expect((await raw(reg, "GET", path, "", headers)).status).to.equal(200);
    const replay = await raw(reg, "GET", path, "", headers);
    expect(replay.status).to.equal(401);
    expect(ErrorBody.parse(replay.body).error).to.equal("replay");

    await reg.kill("SIGKILL");
    await reg.restart();
    const afterRestart = await raw(reg, "GET", path, "", headers);
    expect(afterRestart.status).to.equal(401);
    expect(ErrorBody.parse(afterRestart.body).error).to.equal("replay");
  });

  it("never logs a join token", async () => {
    const { token } = await reg.admin.createToken("corp", { uses: 2 });
    const p = newPeer();
    await memberClient(reg, "corp", p.identity).join(token, p.input);
    await new Promise((r) => setTimeout(r, 100)); // let the log lines arrive
    expect(reg.output()).to.contain("join token created");
    expect(reg.output()).to.contain("peer joined");
    expect(reg.output()).not.to.contain(token);
    expect(reg.output()).not.to.contain(token.slice(6)); // without the scope_ prefix either
  });
});
