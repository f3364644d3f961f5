/**
 * Issue 14, acceptance 1: no state change without auth. 1 000 joins with
 * fresh keys, each with a valid proof of possession but a missing, wrong,
 * expired or other network's token: every answer is a 4xx JSON
 * {error, message}, and no table of the real SQLite file gains a row (read
 * with the sqlite3 tool, not through the registry). Before the fix, the
 * proof's nonce was written before the token was looked at.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import { ErrorBody } from "../../src/core/protocol.js";
import { generateIdentity } from "../../src/crypto/keys.js";
import { signRequest } from "../../src/crypto/signing.js";
import { newPeer, startRegistryProcess, type RegistryProcess } from "./harness.js";

const TABLES = ["networks", "tokens", "peers", "events", "nonces", "paths", "viewer_tokens"] as const;
const JOINS = 1000;
const PARALLEL = 16;

function rowCounts(reg: RegistryProcess): Record<string, number> {
  const sql = TABLES.map((t) => `SELECT '${t}', count(*) FROM ${t};`).join(" ");
  const out = execFileSync("sqlite3", ["-readonly", join(reg.dataDir, "registry.db"), sql], {
    encoding: "utf8",
  });
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .map((l) => l.split("|"))
      .map(([t, n]) => [t, Number(n)]),
  );
}

/** A join as an attacker with a fresh key sends it: properly signed, only the token is bad. */
async function hostileJoin(reg: RegistryProcess, token: string | undefined) {
  const identity = generateIdentity();
  const { input } = newPeer();
  const path = "/v1/networks/corp/join";
  const body = JSON.stringify({
    ...(token === undefined ? {} : { token }),
    peer: { ...input, identityKey: identity.publicKey },
  });
  const headers = signRequest(
    identity,
    "join",
    { method: "POST", path, body: Buffer.from(body) },
    Date.now(),
  );
  const r = await fetch(reg.url + path, {
    method: "POST",
    body,
    headers: { ...headers, "content-type": "application/json" },
  });
  const type = r.headers.get("content-type") ?? "";
  return { status: r.status, type, body: ErrorBody.safeParse(await r.json()) };
}

describe("registry: no state change without a valid join token (real process, real file)", function () {
  this.timeout(120_000);
  let reg: RegistryProcess;

  before(async () => {
    // Limits high enough that every attempt reaches the token check (quotas.test.ts tests them).
    reg = await startRegistryProcess({
      extraConfig: "[limits]\njoin_per_address = 100000/1m\nrequests_per_address = 100000/1m\n",
    });
    await reg.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
    await reg.admin.createNetwork({ name: "lab", cidr: "10.99.0.0/24" });
  });
  after(async () => reg?.dispose());

  it("1 000 joins with a missing, wrong, expired or foreign token: 4xx JSON each, no row added", async () => {
    const expired = await reg.admin.createToken("corp", { uses: 100, expiresIn: 1 });
    const foreign = await reg.admin.createToken("lab", { uses: 100 });
    await new Promise((r) => setTimeout(r, 1100));
    const before = rowCounts(reg);
    const tokens = [undefined, "scope_not-a-token-anyone-made", expired.token, foreign.token];

    const statuses = new Map<number, number>();
    const bad: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < JOINS) {
        const i = next++;
        const r = await hostileJoin(reg, tokens[i % tokens.length]);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status < 400 || r.status > 499 || !r.type.startsWith("application/json") || !r.body.success)
          bad.push(`#${i}: ${r.status} ${r.type}`);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));

    expect(bad).to.deep.equal([]);
    // Each kind got its own refusal, not a 429 or a signature error standing in for it.
    expect([...statuses.keys()].sort()).to.deep.equal([400, 403]);
    expect(rowCounts(reg)).to.deep.equal(before);
  });
});
