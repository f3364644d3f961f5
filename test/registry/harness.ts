/**
 * A real registry process for API tests: `node dist/src/cli/main.js registry`
 * on loopback with a random free port, a temporary data dir (real SQLite file)
 * and its own admin socket. Output is captured so tests can check the logs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdminClient } from "../../src/client/admin-client.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import type { PeerInput } from "../../src/core/protocol.js";
import { sharedPostgres } from "./pg-server.js";
import { generateIdentity, generateWgKeyPair, type Identity } from "../../src/crypto/keys.js";

export const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

const bindUdp = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createSocket("udp4");
    s.once("error", () => resolve(false));
    s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });

/** A TCP port whose number is also free on UDP, with the next one free on UDP too (the reflector's). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    if (port < 65535 && (await bindUdp(port)) && (await bindUdp(port + 1))) return port;
  }
}

export interface RegistryProcess {
  port: number;
  url: string;
  dataDir: string;
  socketPath: string;
  admin: AdminClient;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Starts the process again on the same port and data (after kill). */
  restart(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Kills and removes the data dir. */
  dispose(): Promise<void>;
}

export type StoreKind = "sqlite" | "postgres";
/** The stores every contract suite runs against. */
export const STORES: readonly StoreKind[] = ["sqlite", "postgres"];

/** describe() once per store kind: the same suite is the contract both stores must meet. */
export function describeStores(title: string, body: (this: Mocha.Suite, store: StoreKind) => void): void {
  for (const store of STORES)
    describe(`${title} [${store}]`, function () {
      body.call(this, store);
    });
}

export interface RegistryOptions {
  extraConfig?: string;
  /** sqlite (default): a file under the data dir; postgres: `pgUrl`, or a new database on the shared test server. */
  store?: StoreKind;
  pgUrl?: string;
  /** Serve HTTPS with these PEM files (the URL is then https://127.0.0.1:PORT). */
  tls?: { cert: string; key: string };
  /** Listen on this loopback address and port (default 127.0.0.1 and a free port): replicas behind one name. */
  host?: string;
  port?: number;
}

export async function startRegistryProcess(opts: RegistryOptions = {}): Promise<RegistryProcess> {
  const dir = mkdtempSync(join(tmpdir(), "scope-reg-"));
  const port = opts.port ?? (await freePort());
  const host = opts.host ?? "127.0.0.1";
  const socketPath = join(dir, "admin.sock");
  const config = join(dir, "registry.conf");
  const tls = opts.tls ? `tls_cert = ${opts.tls.cert}\ntls_key = ${opts.tls.key}\n` : "";
  const pgUrl =
    opts.pgUrl ?? (opts.store === "postgres" ? await (await sharedPostgres()).createDatabase() : undefined);
  const store = pgUrl ? `[store]\nkind = postgres\nurl = ${pgUrl}\n` : "";
  // metrics on a free port: registries of parallel runs must not collide on 9470.
  writeFileSync(
    config,
    `[registry]\nadmin_socket = ${socketPath}\nmetrics_listen = 127.0.0.1:${await freePort()}\n${tls}${opts.extraConfig ?? ""}\n${store}`,
  );
  let out = "";
  const url = `${opts.tls ? "https" : "http"}://${host}:${port}`;
  const rp: RegistryProcess = {
    port,
    url,
    dataDir: join(dir, "data"),
    socketPath,
    admin: new AdminClient({ socketPath }),
    child: undefined as unknown as ChildProcess,
    output: () => out,
    restart: async () => {
      rp.child = spawn(
        process.execPath,
        [MAIN, "registry", "--config", config, "--listen", `${host}:${port}`, "--data", rp.dataDir],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      rp.child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
      rp.child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
      try {
        await waitHealthy(url, rp.child, () => out);
      } catch (e) {
        // No RegistryProcess reaches the test to dispose of it: a child left running keeps mocha from exiting.
        rp.child.kill("SIGKILL");
        throw e;
      }
    },
    kill: async (signal = "SIGTERM") => {
      const c = rp.child;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill(signal);
      await exited;
    },
    dispose: async () => {
      await rp.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await rp.restart();
  return rp;
}

export async function waitHealthy(url: string, child: ChildProcess, out: () => string): Promise<void> {
  // 30 s, and at least 20 tries: once the test process itself stalled for 15 s
  // (after the fuzz test, VMs under TCG beside it), so the deadline passed
  // before it had looked twice or read a line of the child's output.
  const started = Date.now();
  const deadline = started + 30_000;
  for (let tries = 0; tries < 20 || Date.now() < deadline; tries++) {
    if (child.exitCode !== null) throw new Error(`registry exited ${child.exitCode}:\n${out()}`);
    // fetch() cannot be given a CA: over https, its own log line says it is up.
    if (url.startsWith("https:") && /registry listening/.test(out())) return;
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `registry (pid ${child.pid}) not healthy after ${Date.now() - started} ms (load ${loadavg().map((l) => l.toFixed(1))}):\n${out()}`,
  );
}

/** RSS of a process in kB, from /proc. */
export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}

let counter = 0;

/** A new host: identity, WireGuard key, and what it would submit at join. */
export function newPeer(name = `host-${++counter}`): {
  identity: Identity;
  input: Omit<PeerInput, "identityKey">;
} {
  return {
    identity: generateIdentity(),
    input: {
      name,
      wgPublicKey: generateWgKeyPair().publicKey,
      listenPort: 51820,
      probePort: 51821,
      candidates: [{ address: "192.0.2.10", port: 51820, kind: "local" }],
      nat: { mapping: "endpoint-independent", ipv6: false },
    },
  };
}

export function memberClient(reg: RegistryProcess, network: string, identity: Identity): RegistryClient {
  return new RegistryClient({ url: reg.url, network, identity });
}

export { record, until, type Recorder } from "./stream-helpers.js";
