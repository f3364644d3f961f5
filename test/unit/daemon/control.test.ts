/**
 * The daemon's control socket (issue 14, "local sockets"): it exists only
 * with mode 0600, made without touching the process umask; a connection's
 * requests are bounded in size and number; the CLI side checks an answer
 * before it uses it, so a foreign or broken socket is an error, not a crash.
 */
import { expect } from "chai";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { controlRequest, serveControl } from "../../../src/daemon/control.js";
import { ScopeError } from "../../../src/core/errors.js";

/** Sends raw text, collects every line the daemon answers until it closes (or 1 s passes). */
function raw(path: string, text: string): Promise<string[]> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    let buf = "";
    const done = (): void => {
      c.destroy();
      resolve(buf.split("\n").filter((l) => l !== ""));
    };
    c.setEncoding("utf8");
    c.on("data", (d: string) => (buf += d));
    c.on("close", done);
    c.on("error", done);
    setTimeout(done, 1_000).unref();
    c.write(text);
  });
}

describe("control socket", () => {
  let dir: string;
  let server: Server | undefined;
  let path: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "scope-control-"));
    path = join(dir, "run", "test.sock");
    server = await serveControl(path, async (req) => ({ echo: req.cmd }));
  });

  afterEach(async () => {
    await new Promise((r) => server?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("is 0600 when it appears, leaves the umask alone and no temp directory behind", async () => {
    const umask = process.umask();
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    expect(process.umask()).to.equal(umask);
    const again = await serveControl(join(dir, "run", "other.sock"), async () => ({}));
    await new Promise((r) => again.close(r));
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(join(dir, "run")).filter((n) => n.startsWith("."))).to.deep.equal([]);
    expect(await controlRequest(path, { cmd: "status" })).to.deep.equal({ ok: true, echo: "status" });
  });

  it("bounds the requests of one connection in size and number", async () => {
    const many = await raw(path, '{"cmd":"status"}\n'.repeat(40));
    expect(many.length).to.be.at.most(17);
    expect(many.at(-1)).to.include("too many requests");
    const long = await raw(path, "x".repeat(200_000));
    expect(long).to.have.length(1);
    expect(long[0]).to.include("request too long");
    // Malformed lines get an error each, and the socket keeps serving.
    const junk = await raw(path, 'nope\n{"cmd":"rm -rf"}\n[]\n');
    expect(junk.map((l) => (JSON.parse(l) as { ok: boolean }).ok)).to.deep.equal([false, false, false]);
    expect(await controlRequest(path, { cmd: "netcheck" })).to.deep.equal({ ok: true, echo: "netcheck" });
  });

  for (const [what, answer] of [
    ["not JSON", "}{\n"],
    ["not a daemon's answer", '{"hello":1}\n'],
    ["no answer before close", ""],
    ["an error with a made-up code", '{"ok":false,"error":"constructor","message":"x"}\n'],
  ] as const) {
    it(`the client turns ${what} into a ScopeError`, async () => {
      const fake = join(dir, "fake.sock");
      const srv: Server = createServer((c) => {
        c.on("data", () => c.end(answer));
        c.on("error", () => undefined);
      });
      await new Promise<void>((r) => srv.listen(fake, r));
      try {
        const e = await controlRequest(fake, { cmd: "status" }, 2_000).then(
          () => undefined,
          (x: unknown) => x,
        );
        expect(e).to.be.instanceOf(ScopeError);
      } finally {
        await new Promise((r) => srv.close(r));
      }
    });
  }
});
