/**
 * Event fan-out benchmark (`npm run bench:registry`, `-- --full` for 10 000).
 *
 * Starts a real registry (`scope registry`) on loopback, seeds N member peers
 * straight into its SQLite file (a fixture: joining 10 000 peers through the
 * API would measure the joins, not the fan-out), opens N SSE subscribers from
 * worker threads on several loopback source addresses, then times joins: from
 * sending the join request to the peerJoin event having reached all N
 * subscribers. The baseline is the same measurement with one subscriber, on
 * the same registry state, so the ratio is the cost of the fan-out itself.
 *
 * The caller raises the fd limit (`ulimit -n 65536`) for the full run.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { AdminClient } from "../src/client/admin-client.js";
import type { Peer } from "../src/core/protocol.js";
import {
  generateIdentity,
  generateWgKeyPair,
  identityFromSecret,
  peerIdOf,
  type Identity,
} from "../src/crypto/keys.js";
import { signRequest } from "../src/crypto/signing.js";
import { SqliteStore } from "../src/registry/sqlite-store.js";
import { freePort, rssKb, waitHealthy } from "../test/registry/harness.js";

const NET = "bench";
const EVENTS_PATH = `/v1/networks/${NET}/events`;
const JOINS = 20;
const SOURCE_ADDRESSES = 8;
const now = () => performance.timeOrigin + performance.now();

interface WorkerInput {
  port: number;
  secrets: string[];
  sourceOffset: number;
}
type WorkerMsg =
  { kind: "ready" } | { kind: "seen"; id: number; at: number } | { kind: "error"; message: string };

// ---- worker: holds a share of the subscribers ------------------------------

function runWorker(input: WorkerInput): void {
  const seen = new Map<number, number>();
  const total = input.secrets.length;
  let ready = 0;
  const post = (m: WorkerMsg) => parentPort!.postMessage(m);
  const open = (i: number): Promise<Socket> =>
    new Promise((resolve) => {
      const identity = identityFromSecret(Buffer.from(input.secrets[i]!, "base64"));
      const peer = peerIdOf(identity.publicKey);
      const headers = signRequest(identity, peer, { method: "GET", path: EVENTS_PATH, body: "" }, Date.now());
      const localAddress = `127.0.0.${2 + ((input.sourceOffset + i) % SOURCE_ADDRESSES)}`;
      const sock = connect({ host: "127.0.0.1", port: input.port, localAddress });
      let maxId = 0;
      let tail = "";
      let isReady = false;
      sock.setEncoding("latin1");
      sock.on("error", (e) => post({ kind: "error", message: e.message }));
      sock.on("data", (chunk: string) => {
        const text = tail + chunk;
        tail = text.slice(-48); // a frame header split across chunks is found on the next one
        if (!isReady && text.includes("event: ready")) {
          isReady = true;
          ready++;
          resolve(sock);
        }
        for (const m of text.matchAll(/(?:^|\n)id: (\d+)\ndata:/g)) {
          const id = Number(m[1]);
          if (id <= maxId) continue;
          maxId = id;
          const n = (seen.get(id) ?? 0) + 1;
          seen.set(id, n);
          if (n === total) {
            post({ kind: "seen", id, at: now() });
            seen.delete(id);
          }
        }
      });
      const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
      sock.write(
        `GET ${EVENTS_PATH} HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n${head.join("")}\r\n`,
      );
    });
  void (async () => {
    // A bounded number of connects in flight: the listen backlog is finite.
    let next = 0;
    const lane = async () => {
      while (next < total) await open(next++);
    };
    await Promise.all(Array.from({ length: 64 }, lane));
    if (ready === total) post({ kind: "ready" });
  })();
}

// ---- main --------------------------------------------------------------------

function seedPeers(dataDir: string, n: number): Identity[] {
  const store = new SqliteStore(join(dataDir, "registry.db")); // runs the migrations
  void store.createNetwork({ name: NET, cidr: "10.64.0.0/10", topology: "mesh", createdAt: Date.now() });
  store.close();
  const db = new Database(join(dataDir, "registry.db"));
  const insert = db.prepare(
    "INSERT INTO peers (network, id, name, wg_key, address, record) VALUES (?, ?, ?, ?, ?, ?)",
  );
  const ids: Identity[] = [];
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const identity = generateIdentity();
      ids.push(identity);
      const n2 = i + 2;
      const address = `10.${64 + (n2 >> 16)}.${(n2 >> 8) & 255}.${n2 & 255}`;
      const peer: Peer = {
        id: peerIdOf(identity.publicKey),
        network: NET,
        name: `sub-${i}`,
        identityKey: identity.publicKey,
        wgPublicKey: generateWgKeyPair().publicKey,
        listenPort: 51820,
        probePort: 51821,
        candidates: [{ address: "192.0.2.1", port: 51820, kind: "local" }],
        nat: { mapping: "endpoint-independent", ipv6: false },
        role: "edge",
        address,
        joinedAt: Date.now(),
        updatedAt: Date.now(),
      };
      insert.run(NET, peer.id, peer.name, peer.wgPublicKey, address, JSON.stringify(peer));
    }
  })();
  db.close();
  return ids;
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};

class Subscribers {
  private workers: Worker[] = [];
  private pending = new Map<number, { reports: number[] }>();
  private waiters = new Map<number, (at: number) => void>();

  async open(port: number, identities: Identity[], threads: number): Promise<void> {
    const share = Math.ceil(identities.length / threads);
    const readies: Promise<void>[] = [];
    for (let t = 0; t < threads && t * share < identities.length; t++) {
      const slice = identities.slice(t * share, (t + 1) * share);
      const input: WorkerInput = {
        port,
        secrets: slice.map((i) => Buffer.from(i.secretKey).toString("base64")),
        sourceOffset: t * share,
      };
      const w = new Worker(fileURLToPath(import.meta.url), { workerData: input });
      this.workers.push(w);
      readies.push(
        new Promise((resolve, reject) => {
          w.on("message", (m: WorkerMsg) => {
            if (m.kind === "ready") resolve();
            else if (m.kind === "error") reject(new Error(m.message));
            else this.report(m.id, m.at);
          });
          w.on("error", reject);
        }),
      );
    }
    await Promise.all(readies);
  }

  /** Resolves with the time the event reached the last subscriber. */
  reached(id: number): Promise<number> {
    return new Promise((resolve) => {
      this.waiters.set(id, resolve);
      this.check(id);
    });
  }

  private report(id: number, at: number): void {
    const p = this.pending.get(id) ?? { reports: [] };
    p.reports.push(at);
    this.pending.set(id, p);
    this.check(id);
  }

  private check(id: number): void {
    const p = this.pending.get(id);
    const w = this.waiters.get(id);
    if (p && w && p.reports.length === this.workers.length) {
      this.pending.delete(id);
      this.waiters.delete(id);
      w(Math.max(...p.reports));
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}

async function measureJoins(url: string, token: string, subs: Subscribers, label: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < JOINS; i++) {
    const identity = generateIdentity();
    const path = `/v1/networks/${NET}/join`;
    const body = JSON.stringify({
      token,
      peer: {
        name: `${label}-${i}`,
        identityKey: identity.publicKey,
        wgPublicKey: generateWgKeyPair().publicKey,
        listenPort: 51820,
        probePort: 51821,
        candidates: [],
        nat: { mapping: "unknown", ipv6: false },
      },
    });
    const t0 = now();
    const headers = {
      ...signRequest(identity, "join", { method: "POST", path, body }, Date.now()),
      "content-type": "application/json",
    };
    const res = await fetch(url + path, { method: "POST", body, headers });
    if (!res.ok) throw new Error(`join failed: ${res.status} ${await res.text()}`);
    const joined = (await res.json()) as { lastEventId: number };
    out.push((await subs.reached(joined.lastEventId)) - t0);
  }
  return out;
}

async function main(): Promise<void> {
  const full = process.argv.includes("--full");
  const n = full ? 10_000 : 1000;
  const threads = Math.max(2, Math.min(4, cpus().length));
  const dir = mkdtempSync(join(tmpdir(), "scope-bench-"));
  const dataDir = join(dir, "data");
  const socketPath = join(dir, "admin.sock");
  writeFileSync(
    join(dir, "registry.conf"),
    `[registry]\nadmin_socket = ${socketPath}\n[log]\nlevel = warn\n`,
  );
  mkdirSync(dataDir, { mode: 0o700 });
  console.log(`seeding ${n} subscriber peers…`);
  const identities = seedPeers(dataDir, n + 1);
  const port = await freePort();
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const child = spawn(
    process.execPath,
    [
      main,
      "registry",
      "--config",
      join(dir, "registry.conf"),
      "--listen",
      `127.0.0.1:${port}`,
      "--data",
      dataDir,
    ],
    {
      stdio: ["ignore", "inherit", "pipe"],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    let out = "";
    child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
    await waitHealthy(url, child, () => out);
    const { token } = await new AdminClient({ socketPath }).createToken(NET, { uses: 10 * JOINS });
    const pid = child.pid!;
    const rssIdle = rssKb(pid);

    console.log(`registry up (pid ${pid}); baseline with 1 subscriber…`);
    const one = new Subscribers();
    await one.open(port, identities.slice(n), 1);
    const base = await measureJoins(url, token, one, "base");
    await one.close();

    console.log(`opening ${n} subscribers…`);
    const t = now();
    const many = new Subscribers();
    await many.open(port, identities.slice(0, n), threads);
    const connectS = (now() - t) / 1000;
    const rssSubscribed = rssKb(pid);
    const lat = await measureJoins(url, token, many, "fan");
    const rssAfter = rssKb(pid);
    await many.close();

    const f = (x: number) => x.toFixed(1);
    console.log(
      `\nregistry fan-out, N=${n} SSE subscribers over ${threads} worker threads, ${JOINS} joins each`,
    );
    console.log(
      `  baseline (1 subscriber):  join→event p50 ${f(percentile(base, 50))} ms  p99 ${f(percentile(base, 99))} ms`,
    );
    console.log(
      `  N=${n} subscribers:       join→event p50 ${f(percentile(lat, 50))} ms  p99 ${f(percentile(lat, 99))} ms`,
    );
    console.log(
      `  ratio to baseline:        p50 ×${(percentile(lat, 50) / percentile(base, 50)).toFixed(2)}  p99 ×${(percentile(lat, 99) / percentile(base, 99)).toFixed(2)}`,
    );
    console.log(`  subscribers connected in ${connectS.toFixed(1)} s`);
    console.log(
      `  registry RSS: idle ${Math.round(rssIdle / 1024)} MB, with N subscribers ${Math.round(rssSubscribed / 1024)} MB, after joins ${Math.round(rssAfter / 1024)} MB`,
    );
    console.log(`  targets at 10 000: p99 ≤ 500 ms, RSS ≤ 512 MB`);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
} else {
  runWorker(workerData as WorkerInput);
}
