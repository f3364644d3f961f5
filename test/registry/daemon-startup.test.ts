/**
 * Start-up is stoppable (issue 9): a real `scope daemon` process against a
 * registry that accepts TCP connections and never answers. SIGTERM 100 ms
 * into start-up (netcheck, then the registry round trip that never comes
 * back) must end the process within 2 s and leave no control socket.
 *
 * The backend is the built-in wg one, kernel flavour, with every command run
 * in a network namespace that does not exist: root or not, nothing is
 * created, each call fails at once and is logged, which is all start-up needs.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateIdentity, generateWgKeyPair, peerIdOf } from "../../src/crypto/keys.js";
import { identityFileText } from "../../src/daemon/files.js";
import { freePort } from "./harness.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** A TCP server that takes connections and never says a word. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const conns = new Set<Socket>();
  const server = createServer((c) => {
    conns.add(c);
    c.on("error", () => undefined);
    c.on("close", () => conns.delete(c));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        server.close(() => r());
      }),
  };
}

/** Config, keys and a cached join answer in a temp dir, as `scope join` leaves them. */
async function edgeDir(registryPort: number): Promise<{ dir: string; config: string; socket: string }> {
  const dir = mkdtempSync(join(tmpdir(), "scope-edge-"));
  const identity = generateIdentity();
  const wg = generateWgKeyPair();
  const state = join(dir, "state");
  const socket = join(dir, "run", "test.sock");
  const listenPort = await freePort();
  writeFileSync(join(dir, "identity.key"), identityFileText(identity), { mode: 0o600 });
  writeFileSync(join(dir, "wg.key"), wg.privateKey + "\n", { mode: 0o600 });
  mkdirSync(state, { mode: 0o700 });
  const self = {
    id: peerIdOf(identity.publicKey),
    network: "test",
    name: "edge1",
    identityKey: identity.publicKey,
    wgPublicKey: wg.publicKey,
    listenPort,
    probePort: listenPort + 1,
    candidates: [],
    nat: { mapping: "unknown", ipv6: false },
    role: "edge",
    address: "10.99.0.2",
    joinedAt: 0,
    updatedAt: 0,
  };
  const joined = {
    network: { name: "test", cidr: "10.99.0.0/16", topology: "mesh", createdAt: 0 },
    self,
    registryKey: generateIdentity().publicKey,
    reflectorPorts: [registryPort, registryPort + 1],
  };
  writeFileSync(join(state, "join.json"), JSON.stringify(joined), { mode: 0o600 });
  const config = join(dir, "test.conf");
  writeFileSync(
    config,
    [
      "[registry]",
      `url = http://127.0.0.1:${registryPort}`,
      "[network]",
      "name = test",
      "[identity]",
      `key_file = ${join(dir, "identity.key")}`,
      "[wireguard]",
      "interface = scopetest0",
      `listen_port = ${listenPort}`,
      `private_key_file = ${join(dir, "wg.key")}`,
      "[daemon]",
      `state_dir = ${state}`,
      `control_socket = ${socket}`,
      "log_level = debug",
      "[backend]",
      "type = wg",
      "flavour = kernel",
      // Root or not, nothing may be created: every command runs in a namespace that does not exist.
      `netns = scope-none-${process.pid}`,
      "",
    ].join("\n"),
  );
  return { dir, config, socket };
}

describe("daemon start-up", function () {
  this.timeout(20_000);

  for (const delayMs of [100, 1_500]) {
    it(`SIGTERM ${delayMs} ms into start-up against a silent registry exits within 2 s, no control socket left`, async function () {
      const registry = await silentServer();
      const edge = await edgeDir(registry.port);
      let out = "";
      const child = spawn(process.execPath, [MAIN, "daemon", "--config", edge.config], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((r) =>
        child.once("exit", (code, signal) => r({ code, signal, at: Date.now() })),
      );
      try {
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (out += d.toString()));
        // "100 ms after it starts": after it said so (Node's own start-up is not the daemon's).
        const t0 = Date.now();
        while (!out.includes("starting")) {
          if (child.exitCode !== null) assert.fail(`daemon exited early:\n${out}`);
          if (Date.now() - t0 > 10_000) assert.fail(`daemon never started:\n${out}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        await new Promise((r) => setTimeout(r, delayMs));
        const termAt = Date.now();
        child.kill("SIGTERM");
        const timeout = new Promise<undefined>((r) => setTimeout(() => r(undefined), 2_000).unref());
        const result = await Promise.race([exited, timeout]);
        assert.ok(result, `still running 2 s after SIGTERM:\n${out}`);
        assert.equal(result.signal, null, `died by ${result.signal}, not by its own shutdown:\n${out}`);
        assert.equal(result.code, 0, out);
        assert.ok(result.at - termAt < 2_000);
        assert.ok(!existsSync(edge.socket), `control socket ${edge.socket} left behind:\n${out}`);
      } finally {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGKILL");
          await exited;
        }
        await registry.close();
        rmSync(edge.dir, { recursive: true, force: true });
      }
    });
  }
});
