/**
 * The admin socket is born 0660 (no chmod after listen) in a directory
 * others cannot enter; a registry told to put it in a directory open to
 * every user refuses to start, saying why.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { connect } from "node:net";
import { ADMIN_REQUESTS_PER_CONNECTION } from "../../src/registry/admin-socket.js";
import { startRegistryProcess } from "./harness.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

describe("registry: admin socket mode and directory (real process)", function () {
  this.timeout(30_000);

  it("creates the socket 0660 in a directory that others cannot enter", async () => {
    const reg = await startRegistryProcess();
    try {
      expect((statSync(reg.socketPath).mode & 0o777).toString(8)).to.equal("660");
      expect(statSync(dirname(reg.socketPath)).mode & 0o007).to.equal(0);
    } finally {
      await reg.dispose();
    }
  });

  it(`serves at most ${ADMIN_REQUESTS_PER_CONNECTION} requests on one connection`, async () => {
    const reg = await startRegistryProcess();
    try {
      const sock = connect(reg.socketPath);
      let replies = "";
      sock.on("data", (d: Buffer) => (replies += d.toString()));
      const closed = new Promise<void>((resolve) => sock.on("close", () => resolve()));
      sock.on("error", () => undefined); // written after the server closed: fine, the count is what matters
      const request = "GET /networks HTTP/1.1\r\nHost: admin\r\n\r\n";
      sock.write(request.repeat(ADMIN_REQUESTS_PER_CONNECTION + 20));
      await closed;
      const statuses = [...replies.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
      // Past the limit node answers 503 and closes: nothing more is served on this connection.
      expect(statuses.filter((s) => s !== "503")).to.have.length(ADMIN_REQUESTS_PER_CONNECTION);
      expect(statuses.slice(ADMIN_REQUESTS_PER_CONNECTION).every((s) => s === "503")).to.equal(true);
    } finally {
      await reg.dispose();
    }
  });

  it("refuses a socket directory open to every user, with exit 2 and one line", () => {
    const dir = mkdtempSync(join(tmpdir(), "scope-sock-"));
    try {
      const open = join(dir, "open");
      mkdirSync(open);
      chmodSync(open, 0o755);
      const conf = join(dir, "registry.conf");
      writeFileSync(conf, `[registry]\nadmin_socket = ${open}/admin.sock\nmetrics_listen = off\n`);
      const r = spawnSync(
        process.execPath,
        [MAIN, "registry", "--config", conf, "--listen", "127.0.0.1:1", "--data", join(dir, "data")],
        { encoding: "utf8", timeout: 20_000 },
      );
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr.trim().split("\n")).to.have.length(1);
      expect(r.stderr).to.match(/open to every user \(mode 755\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
