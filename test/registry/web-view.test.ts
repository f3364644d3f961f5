/**
 * Issue 16 at the registry: path reports (both stores), viewer tokens and
 * who may read or change what (acceptance 3), on a real registry process.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { expect } from "chai";
import { DB_FILE } from "../../src/registry/server.js";
import type { PathView } from "../../src/core/protocol.js";
import { ScopeError } from "../../src/core/errors.js";
import {
  MAIN,
  describeStores,
  memberClient,
  newPeer,
  startRegistryProcess,
  type RegistryProcess,
} from "./harness.js";

const run = promisify(execFile);

const view = (peer: string, path: PathView["path"], extra: Partial<PathView> = {}): PathView => ({
  peer,
  path,
  hub: null,
  family: path === "direct" ? "ipv4" : null,
  latencyMs: path === "direct" ? 1.5 : null,
  handshakeAgeS: path === "direct" ? 3 : null,
  pskEpoch: null,
  reason: path === "direct" ? null : "symmetric NAT on both sides",
  ...extra,
});

async function members(reg: RegistryProcess, network: string, names: string[]) {
  const { token } = await reg.admin.createToken(network, { uses: names.length });
  const out = [];
  for (const n of names) {
    const p = newPeer(n);
    const client = memberClient(reg, network, p.identity);
    const joined = await client.join(token, p.input);
    out.push({ id: joined.self.id, name: n, client });
  }
  return out;
}

describeStores("registry: path reports for the web view", function (store) {
  this.timeout(60_000);
  let reg: RegistryProcess;

  before(async () => {
    reg = await startRegistryProcess({ store });
    await reg.admin.createNetwork({ name: "paths", cidr: "10.77.0.0/24" });
  });
  after(async () => reg?.dispose());

  it("keeps the latest view per pair, drops views about non-members and pairs of a peer that left", async () => {
    const [a, b, c] = await members(reg, "paths", ["pa", "pb", "pc"]);
    if (!a || !b || !c) throw new Error("no members");
    await a.client.reportPaths([
      view(b.id, "pending"),
      view(c.id, "hub", { hub: b.id }),
      view("0123456789abcdef", "direct"), // not a member: dropped
      view(a.id, "direct"), // about itself: dropped
    ]);
    await a.client.reportPaths([view(b.id, "direct", { pskEpoch: 2 })]); // the pair's latest wins
    await b.client.reportPaths([view(a.id, "direct")]);
    const paths = await reg.admin.listPaths("paths");
    expect(paths.map((p) => `${p.from}>${p.peer}:${p.path}`).sort()).to.deep.equal(
      [`${a.id}>${b.id}:direct`, `${a.id}>${c.id}:hub`, `${b.id}>${a.id}:direct`].sort(),
    );
    expect(paths.find((p) => p.from === a.id && p.peer === b.id)?.pskEpoch).to.equal(2);
    expect(paths.find((p) => p.peer === c.id)?.hub).to.equal(b.id);

    // `scope peer list --json` carries each peer's reports.
    const { stdout } = await run(process.execPath, [
      MAIN,
      "peer",
      "list",
      "paths",
      "--json",
      "--socket",
      reg.socketPath,
    ]);
    const listed = JSON.parse(stdout) as {
      id: string;
      paths: { peer: string; path: string; reason: string | null }[];
    }[];
    const pa = listed.find((p) => p.id === a.id);
    expect(pa?.paths.map((p) => p.path).sort()).to.deep.equal(["direct", "hub"]);
    expect(pa?.paths.find((p) => p.peer === c.id)?.reason).to.equal("symmetric NAT on both sides");

    await b.client.leave();
    const after = await reg.admin.listPaths("paths");
    expect(after.map((p) => `${p.from}>${p.peer}`)).to.deep.equal([`${a.id}>${c.id}`]);
    // Gone from the file too, not only filtered out of the answer (the view filters as well).
    if (store === "sqlite") {
      const db = new Database(join(reg.dataDir, DB_FILE), { readonly: true });
      const rows = db
        .prepare("SELECT count(*) AS n FROM paths WHERE reporter = ? OR peer = ?")
        .get(b.id, b.id);
      db.close();
      expect(rows).to.deep.equal({ n: 0 });
    }
  });

  it("refuses a malformed report with a 400 before storing anything", async () => {
    const [d] = await members(reg, "paths", ["pd"]);
    if (!d) throw new Error("no member");
    const err = await d.client
      .reportPaths([{ ...view("0123456789abcdef", "direct"), path: "teleport" as "direct" }])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).to.be.instanceOf(ScopeError);
    expect((err as ScopeError).status).to.equal(400);
  });
});

describe("registry: web view access (real process)", function () {
  this.timeout(60_000);
  const ADMIN_TOKEN = "admin-token-for-the-view-test-0123456789";
  let reg: RegistryProcess;
  let viewer: string;
  let otherViewer: string;
  let peerId: string;
  const secrets: string[] = [];
  let dir: string | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "scope-view-"));
    const tokenFile = join(dir, "admin.token");
    writeFileSync(tokenFile, ADMIN_TOKEN, { mode: 0o600 });
    reg = await startRegistryProcess({
      extraConfig: `admin_token_file = ${tokenFile}\n[limits]\nreports_per_peer = 3/1m\n`,
    });
    await reg.admin.createNetwork({ name: "seen", cidr: "10.78.0.0/24" });
    await reg.admin.createNetwork({ name: "other", cidr: "10.79.0.0/24" });
    const [m] = await members(reg, "seen", ["secret-host-name"]);
    if (!m) throw new Error("no member");
    peerId = m.id;
    const peers = await reg.admin.listPeers("seen");
    for (const p of peers) secrets.push(p.name, p.identityKey, p.wgPublicKey, p.address);
    viewer = (await reg.admin.createViewerToken("seen", {})).token;
    otherViewer = (await reg.admin.createViewerToken("other", {})).token;
    secrets.push(viewer, ADMIN_TOKEN);
  });
  after(async () => {
    await reg?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true }); // the admin token file
  });

  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const r = await fetch(`${reg.url}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body ? { "content-type": "application/json" } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, text: await r.text() };
  };

  /** An error answer is the usual {error, message} and names nothing of the network. */
  const noLeak = (r: { text: string }) => {
    expect(Object.keys(JSON.parse(r.text) as object).sort()).to.deep.equal(["error", "message"]);
    for (const s of secrets) expect(r.text).not.to.include(s);
  };

  it("the view needs a token: none, a wrong one, another network's viewer token are 401 and leak nothing", async () => {
    for (const t of [undefined, "wrong", "scopeview_wrong", otherViewer, ADMIN_TOKEN.slice(0, -1)]) {
      for (const p of [
        "/v1/networks/seen/view",
        "/v1/networks/seen/paths",
        "/v1/networks/seen/view/events",
      ]) {
        const r = await call("GET", p, t);
        expect(r.status, `${p} with ${t}`).to.equal(401);
        noLeak(r);
      }
    }
  });

  it("an expired viewer token is refused like a wrong one", async () => {
    const short = (await reg.admin.createViewerToken("seen", { expiresIn: 1 })).token;
    expect((await call("GET", "/v1/networks/seen/view", short)).status).to.equal(200);
    await new Promise((r) => setTimeout(r, 1100));
    const r = await call("GET", "/v1/networks/seen/view", short);
    expect(r.status).to.equal(401);
    noLeak(r);
  });

  it("the admin token and the network's viewer token read the view; it has no key", async () => {
    for (const t of [ADMIN_TOKEN, viewer]) {
      const r = await call("GET", "/v1/networks/seen/view", t);
      expect(r.status).to.equal(200);
      expect(r.text).to.include("secret-host-name");
      const [p] = await reg.admin.listPeers("seen");
      expect(r.text).not.to.include(p?.identityKey);
      expect(r.text).not.to.include(p?.wgPublicKey);
    }
  });

  it("a viewer token changes nothing: every write call and every other read is 403 and leaks nothing", async () => {
    const writes: [string, string, unknown?][] = [
      ["POST", "/v1/networks", { name: "evil", cidr: "10.1.0.0/24" }],
      ["POST", "/v1/networks/seen/tokens", { uses: 1 }],
      ["POST", "/v1/networks/seen/viewer-tokens", {}],
      ["PATCH", `/v1/networks/seen/peers/${peerId}`, { role: "hub" }],
      ["DELETE", `/v1/networks/seen/peers/${peerId}`],
      ["PUT", "/v1/networks/seen/paths", { views: [view(peerId, "direct")] }],
      ["POST", "/v1/networks/seen/messages", { type: "cc.ltgc.scope:peerConn", body: { peerId } }],
      ["DELETE", "/v1/networks/seen/peers/self"],
      ["GET", "/v1/networks"],
      ["GET", "/v1/networks/seen"],
      ["GET", "/v1/networks/seen/peers"],
      ["GET", "/v1/networks/seen/events"],
    ];
    for (const [method, path, body] of writes) {
      const r = await call(method, path, viewer, body);
      expect(r.status, `${method} ${path}`).to.equal(403);
      noLeak(r);
    }
    // Nothing changed.
    expect((await reg.admin.listNetworks()).map((n) => n.name)).not.to.include("evil");
    expect((await reg.admin.listPeers("seen")).map((p) => p.role)).to.deep.equal(["edge"]);
  });

  it("path reports are rate-limited per member (429 past reports_per_peer)", async () => {
    const [m] = await members(reg, "seen", ["chatty"]);
    if (!m) throw new Error("no member");
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++)
      statuses.push(
        await m.client.reportPaths([view(peerId, "direct")]).then(
          () => 204,
          (e: ScopeError) => e.status,
        ),
      );
    expect(statuses).to.deep.equal([204, 204, 204, 429, 429]);
  });
});
