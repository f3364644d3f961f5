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
