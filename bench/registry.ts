/**
 * Event fan-out benchmark (`npm run bench:registry`; `-- --help` for options).
 *
 * For each N of `--n` (default 1000 and 10 000, in one run): starts a real
 * registry (`scope registry`) on loopback, seeds N member peers
 * straight into its SQLite file (a fixture: joining 10 000 peers through the
 * API would measure the joins, not the fan-out), opens N SSE subscribers from
 * worker threads on several loopback source addresses, then times joins: from
 * sending the join request to the peerJoin event having reached all N
 * subscribers. The baseline is the same measurement with one subscriber, on
 * the same registry state, so the ratio is the cost of the fan-out itself.
 *
 * The floor: the same subscribers on a bare node:http server (`--floor-server`,
 * a child process like the registry) that writes one shared buffer to every
 * open response per trigger. What the registry adds on top of that is its
 * own cost; the rest is the machine's (loopback, scheduler, client workers).
 * Load average is printed with every figure: on a shared 2-core host the
 * numbers move with it.
 *
 * Then the two-replica case (issue 15): the same state moved into a private
 * PostgreSQL server, two registry processes on it, the same N subscribers
 * split over both and joins alternating between them; join-to-event p50/p99
 * and join throughput (THROUGHPUT_JOINS, JOIN_CONCURRENCY in flight, no
 * subscribers) are printed next to the SQLite registry's from the same run,
 * and a last table puts every N's SQLite and two-replica figures together.
 *
 * fd limits are raised for the bench and both servers with prlimit when
 * allowed (root); otherwise the caller needs `ulimit -n` above N + 1000.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer, request as httpRequest, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
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
import { silentLogger } from "../src/core/logger.js";
import { migrateSqliteToPg } from "../src/registry/migrate.js";
import { SqliteStore } from "../src/registry/sqlite-store.js";
import { freePort, waitHealthy } from "../test/registry/harness.js";
import { startPostgres } from "../test/registry/pg-server.js";

const NET = "bench";
const EVENTS_PATH = `/v1/networks/${NET}/events`;
const JOINS = 20;
/**
 * Joins timed for throughput, and how many are in flight at once: each answer
 * carries the peer list (~5 MB at 10 000), so more in flight only queues
 * them past the server's 30 s request timeout.
 */
const THROUGHPUT_JOINS = 100;
const JOIN_CONCURRENCY = 2;
const SOURCE_ADDRESSES = 8;
const now = () => performance.timeOrigin + performance.now();
const FD_LIMIT = 65_536;
/** Descriptors besides the subscribers' sockets: database, logs, workers, admin socket, joins. */
const FD_SPARE = 1000;
const USAGE = `usage: npm run bench:registry [-- --n 1000,10000]

  --n LIST   subscriber counts, each measured in turn in this one run
             (default 1000,10000; --full is the same as the default)
  --help     this text

Needs the registry tier's PostgreSQL (bash test/setup.sh registry) and N + ${FD_SPARE}
file descriptors per process: raised with prlimit as root, else ulimit -Hn.`;
/** An event of a realistic size (a peerJoin record is ~500-700 bytes) for the floor server. */
const FLOOR_DATA = JSON.stringify({ type: "floor", pad: "x".repeat(600) });
const load = () => `load ${loadavg()[0]!.toFixed(1)}`;

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
      sock.on("error", (e) =>
        post({
          kind: "error",
          message: `subscriber ${input.sourceOffset + i} (${ready} of ${total} ready in this worker): ${e.message}`,
        }),
      );
      // A server out of file descriptors (libuv accepts and closes at once) or past
      // max_connections closes a new connection before answering: a reset if our
      // request had arrived, else a bare close, which would leave this lane waiting.
      sock.on("close", () => {
        if (!isReady)
          post({
            kind: "error",
            message: `subscriber ${input.sourceOffset + i}: closed by the server before its ready event (its fd limit or max_connections?)`,
          });
      });
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

/**
 * Fixture identities from random seeds (one key derivation each) and random
 * WireGuard public keys (stored, never used): the full run's seeding spent
 * most of its time in two key generations with JWK exports per peer, which
 * on a loaded host took minutes and looked like a hang.
 */
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
      const identity = identityFromSecret(randomBytes(32));
      ids.push(identity);
      const n2 = i + 2;
      const address = `10.${64 + (n2 >> 16)}.${(n2 >> 8) & 255}.${n2 & 255}`;
      const peer: Peer = {
        id: peerIdOf(identity.publicKey),
        network: NET,
        name: `sub-${i}`,
        identityKey: identity.publicKey,
        wgPublicKey: randomBytes(32).toString("base64"),
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

  /** Threads spread over `ports` (one per registry replica) in turn. */
  async open(ports: number[], identities: Identity[], threads: number): Promise<void> {
    const share = Math.ceil(identities.length / threads);
    const readies: Promise<void>[] = [];
    for (let t = 0; t < threads && t * share < identities.length; t++) {
      const slice = identities.slice(t * share, (t + 1) * share);
      const input: WorkerInput = {
        port: ports[t % ports.length]!,
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

/** Sends one trigger (a join, or a floor emit); resolves with the event id it caused. */
type Trigger = (i: number) => Promise<number>;

async function measure(trigger: Trigger, subs: Subscribers): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < JOINS; i++) {
    const t0 = now();
    const id = await trigger(i);
    out.push((await subs.reached(id)) - t0);
  }
  return out;
}

/** Joins a new peer through urls[i % urls.length]: with two replicas, every other join on each. */
const joinTrigger =
  (urls: string[], token: string, label: string): Trigger =>
  async (i) => {
    const url = urls[i % urls.length]!;
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
    const headers = {
      ...signRequest(identity, "join", { method: "POST", path, body }, Date.now()),
      "content-type": "application/json",
    };
    const res = await postFresh(url + path, body, headers);
    if (res.status !== 200) throw new Error(`join failed: ${res.status} ${res.text.slice(0, 200)}`);
    return (JSON.parse(res.text) as { lastEventId: number }).lastEventId;
  };

/**
 * A POST on a connection of its own. A kept-alive one sits idle while the
 * fan-out runs (seconds at 10 000 under load), past the server's keep-alive
 * timeout: reusing it as the server closes it ended a run in ECONNRESET.
 */
function postFresh(
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: "POST", agent: false, headers: { ...headers, "content-length": Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const floorTrigger =
  (url: string): Trigger =>
  async () => {
    const res = await postFresh(`${url}/emit`, "");
    return (JSON.parse(res.text) as { lastEventId: number }).lastEventId;
  };

/** THROUGHPUT_JOINS new peers, JOIN_CONCURRENCY at a time, spread over urls: joins per second. */
async function joinThroughput(urls: string[], token: string): Promise<{ perSecond: number }> {
  const trigger = joinTrigger(urls, token, `tp${urls.length}`);
  let next = 0;
  const t0 = now();
  const lane = async () => {
    while (next < THROUGHPUT_JOINS) await trigger(next++);
  };
  try {
    await Promise.all(Array.from({ length: JOIN_CONCURRENCY }, lane));
  } catch (e) {
    // A figure, not a test: say what broke and keep the fan-out figures of the run.
    console.log(
      `  join throughput failed after ${next} joins: ${(e as Error).message} ${String((e as Error).cause ?? "")}`,
    );
    return { perSecond: NaN };
  }
  return { perSecond: THROUGHPUT_JOINS / ((now() - t0) / 1000) };
}

/** A registry process with its own data dir and admin socket under dir; resolves once healthy. */
async function spawnRegistry(
  dir: string,
  extraConfig: string,
  n: number,
): Promise<{ child: ChildProcess; port: number }> {
  mkdirSync(join(dir, "data"), { recursive: true, mode: 0o700 });
  const conf = join(dir, "registry.conf");
  writeFileSync(
    conf,
    `[registry]\nadmin_socket = ${join(dir, "admin.sock")}\nmetrics_listen = off\n[log]\nlevel = warn\n[limits]\n${UNLIMITED}${extraConfig}`,
  );
  const port = await freePort();
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const args = [
    main,
    "registry",
    "--config",
    conf,
    "--listen",
    `127.0.0.1:${port}`,
    "--data",
    join(dir, "data"),
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "pipe"] });
  let out = "";
  child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  await waitHealthy(`http://127.0.0.1:${port}`, child, () => out).catch(async (e: unknown) => {
    await stop(child);
    throw e;
  });
  try {
    raiseFdLimit(child.pid!, n);
  } catch (e) {
    await stop(child);
    throw e;
  }
  return { child, port };
}

/**
 * The two-replica case: the SQLite registry's state moved into a private
 * PostgreSQL (the test tier's server, pg-server.ts) by `registry migrate`'s
 * code, two registry processes on it, subscribers split over both, joins
 * alternating between them.
 */
async function measureReplicas(sqliteFile: string, identities: Identity[], threads: number) {
  const server = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), "scope-bench-pg-"));
  const children: ChildProcess[] = [];
  try {
    const pgUrl = await server.createDatabase();
    await migrateSqliteToPg(sqliteFile, pgUrl, silentLogger, Date.now());
    const store = `[store]\nkind = postgres\nurl = ${pgUrl}\n`;
    const regs = await Promise.all(
      ["a", "b"].map((r) => spawnRegistry(join(dir, r), store, identities.length)),
    );
    children.push(...regs.map((r) => r.child));
    const urls = regs.map((r) => `http://127.0.0.1:${r.port}`);
    const admin = new AdminClient({ socketPath: join(dir, "a", "admin.sock") });
    const { token } = await admin.createToken(NET, { uses: 10 * JOINS + THROUGHPUT_JOINS });
    const subs = new Subscribers();
    await subs.open(
      regs.map((r) => r.port),
      identities,
      threads,
    );
    const loadAt = load();
    const lat = await measure(joinTrigger(urls, token, "rep"), subs);
    const fanLoad = `${loadAt} → ${load()}`;
    await subs.close();
    const loadJoins = load();
    const joins = await joinThroughput(urls, token);
    const out: Figures = { lat, joins: joins.perSecond, fanLoad, joinLoad: `${loadJoins} → ${load()}` };
    return out;
  } finally {
    await Promise.all(children.map(stop));
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- floor server: bare node:http, one buffer written to every response --------

function runFloorServer(): void {
  const streams = new Set<ServerResponse>();
  let id = 0;
  const server = createServer((req, res) => {
    if (req.method === "POST") {
      const frame = Buffer.from(`id: ${++id}\ndata: ${FLOOR_DATA}\n\n`);
      for (const s of streams) s.write(frame);
      res.end(JSON.stringify({ lastEventId: id }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(`event: ready\nid: ${id}\ndata: {}\n\n`);
    streams.add(res);
    res.on("close", () => streams.delete(res));
  });
  server.listen(Number(process.argv[3]), "127.0.0.1");
  server.on("listening", () => process.stdout.write("listening\n"));
}

// ---- main --------------------------------------------------------------------

/**
 * Root may raise a process's limit (not in a container without
 * CAP_SYS_RESOURCE); Node itself lifts the soft limit to the hard one. Then
 * the limit must hold N sockets and some: a registry that runs out closes
 * new connections at once, and the bench would see only resets.
 */
function raiseFdLimit(pid: number, n: number): void {
  try {
    execFileSync("prlimit", ["--pid", String(pid), `--nofile=${FD_LIMIT}:${FD_LIMIT}`], { stdio: "ignore" });
  } catch {
    // not permitted or no prlimit: checked below
  }
  const limits = readFileSync(`/proc/${pid}/limits`, "utf8");
  const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? Infinity);
  const need = n + FD_SPARE;
  if (soft < need)
    throw new Error(
      `pid ${pid} may open ${soft} files and needs ${need} for ${n} subscribers: raise the hard limit (ulimit -Hn, as root) first`,
    );
}

/** Resident set now and its peak (VmHWM), MB, from /proc: the server process's real memory. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: Math.round(kb("VmRSS") / 1024), peak: Math.round(kb("VmHWM") / 1024) };
}

function stop(child: ChildProcess): Promise<unknown> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  return exited;
}

/** Loopback TCP retransmissions so far (host-wide): a lost segment waits for an RTO of 200 ms or more. */
function retransmits(): number {
  const lines = readFileSync("/proc/net/snmp", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("Tcp:"));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf("RetransSegs") ?? -1] ?? NaN);
}

const UNLIMITED = [
  "join_per_address",
  "join_per_peer",
  "requests_per_address",
  "requests_per_peer",
  "messages_per_peer",
]
  .map((k) => `${k} = off\n`)
  .join("")
  .concat("streams_per_peer = 0\nmax_connections = 100000\n");
const f = (x: number) => x.toFixed(1);
const summary = (xs: number[]) => `p50 ${f(percentile(xs, 50))} ms  p99 ${f(percentile(xs, 99))} ms`;
const ratio = (xs: number[], base: number[]) =>
  `p50 ×${(percentile(xs, 50) / percentile(base, 50)).toFixed(2)}  p99 ×${(percentile(xs, 99) / percentile(base, 99)).toFixed(2)}`;

/** The same N subscribers against the bare server; its figures are the machine's floor. */
async function measureFloor(
  identities: Identity[],
  threads: number,
): Promise<{ lat: number[]; peak: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--floor-server", String(port)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`floor server exited ${code}`)));
    });
    raiseFdLimit(child.pid!, identities.length);
    const subs = new Subscribers();
    await subs.open([port], identities, threads);
    const lat = await measure(floorTrigger(`http://127.0.0.1:${port}`), subs);
    const { peak } = memory(child.pid!);
    await subs.close();
    return { lat, peak };
  } finally {
    await stop(child);
  }
}

/** Join→event latencies, join throughput, and the load average over each of the two. */
interface Figures {
  lat: number[];
  joins: number;
  fanLoad: string;
  joinLoad: string;
}

const figuresLine = (x: Figures) =>
  `join→event ${summary(x.lat)}   joins ${f(x.joins)}/s   (${x.fanLoad}; joins ${x.joinLoad})`;

/** What one N's run leaves for the table that ends the bench. */
interface SizeResult {
  n: number;
  sqlite: Figures;
  replicas: Figures;
}

/** One N: SQLite registry (baseline, N subscribers, join throughput), two replicas, floor; prints its block. */
async function runSize(n: number, threads: number): Promise<SizeResult> {
  const dir = mkdtempSync(join(tmpdir(), "scope-bench-"));
  const dataDir = join(dir, "data");
  const socketPath = join(dir, "admin.sock");
  writeFileSync(
    join(dir, "registry.conf"),
    // The bench measures fan-out from one loopback client: quotas would measure the limiter.
    `[registry]\nadmin_socket = ${socketPath}\nmetrics_listen = off\n[log]\nlevel = warn\n[limits]\n${UNLIMITED}`,
  );
  mkdirSync(dataDir, { mode: 0o700 });
  console.log(`\nN = ${n}: seeding ${n} subscriber peers… (${load()})`);
  let t = now();
  const identities = seedPeers(dataDir, n + 1);
  console.log(`  seeded in ${((now() - t) / 1000).toFixed(1)} s (${load()})`);
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
    const pid = child.pid!;
    raiseFdLimit(pid, n);
    const { token } = await new AdminClient({ socketPath }).createToken(NET, {
      uses: 10 * JOINS + THROUGHPUT_JOINS,
    });
    const idle = memory(pid);

    console.log(`registry up (pid ${pid}); baseline with 1 subscriber… (${load()})`);
    const one = new Subscribers();
    await one.open([port], identities.slice(n), 1);
    const base = await measure(joinTrigger([url], token, "base"), one);
    await one.close();
    const loadBase = load();

    console.log(`opening ${n} subscribers… (${load()})`);
    t = now();
    const many = new Subscribers();
    await many.open([port], identities.slice(0, n), threads);
    const connectS = (now() - t) / 1000;
    const subscribed = memory(pid);
    const loadFan = load();
    const retransBefore = retransmits();
    const lat = await measure(joinTrigger([url], token, "fan"), many);
    const retrans = retransmits() - retransBefore;
    const after = memory(pid);
    const loadAfter = load();
    await many.close();
    const loadJoins = load();
    const sqliteJoins = await joinThroughput([url], token);
    const sqlite: Figures = {
      lat,
      joins: sqliteJoins.perSecond,
      fanLoad: `${loadFan} → ${loadAfter}`,
      joinLoad: `${loadJoins} → ${load()}`,
    };
    await stop(child);

    console.log(`two replicas on PostgreSQL, the same ${n} subscribers split over both… (${load()})`);
    const replicas = await measureReplicas(join(dataDir, "registry.db"), identities.slice(0, n), threads);

    console.log(`floor: the same ${n} subscribers on a bare node:http server… (${load()})`);
    const floor = await measureFloor(identities.slice(0, n), threads);
    const loadFloor = load();

    console.log(
      `\nregistry fan-out, N=${n} SSE subscribers over ${threads} worker threads, ${JOINS} joins each (${cpus().length} cores)`,
    );
    console.log(`  baseline (1 subscriber):  join→event ${summary(base)}   (${loadBase})`);
    console.log(`  N=${n} subscribers:       join→event ${summary(lat)}   (${loadFan} → ${loadAfter})`);
    console.log(`  ratio to baseline:        ${ratio(lat, base)}`);
    console.log(`  each join, in order (ms): ${lat.map((x) => x.toFixed(0)).join(" ")}`);
    console.log(`  TCP retransmissions during the joins (host-wide): ${retrans}`);
    console.log(`  floor (bare node:http):   emit→event ${summary(floor.lat)}   (${loadFloor})`);
    console.log(`  ratio to floor:           ${ratio(lat, floor.lat)}`);
    console.log(`  subscribers connected in ${connectS.toFixed(1)} s`);
    console.log(
      `  registry RSS: idle ${idle.rss} MB, with N subscribers ${subscribed.rss} MB, after joins ${after.rss} MB, peak ${after.peak} MB (floor server peak ${floor.peak} MB)`,
    );
    console.log(`  targets at 10 000: p99 ≤ 500 ms, RSS ≤ 512 MB`);
    console.log(`\nSQLite (one registry) next to two replicas on one PostgreSQL, N=${n}, same run`);
    console.log(`  SQLite:      ${figuresLine(sqlite)}`);
    console.log(`  2 replicas:  ${figuresLine(replicas)}`);
    console.log(
      `  ratio to SQLite:          ${ratio(replicas.lat, lat)}   joins ×${(replicas.joins / sqlite.joins).toFixed(2)}`,
    );
    return { n, sqlite, replicas };
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The subscriber counts asked for, or the usage on --help or anything else. */
function sizes(): number[] | undefined {
  const { values } = parseArgs({
    options: {
      n: { type: "string", default: "1000,10000" },
      full: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return undefined;
  const ns = (values.n ?? "").split(",").map(Number);
  if (ns.some((x) => !Number.isInteger(x) || x < 1))
    throw new Error(`--n: a list of subscriber counts\n${USAGE}`);
  return ns;
}

async function main(): Promise<void> {
  const ns = sizes();
  if (!ns) return console.log(USAGE);
  const threads = Math.max(2, Math.min(4, cpus().length));
  raiseFdLimit(process.pid, Math.max(...ns));
  console.log(`bench:registry: N = ${ns.join(", ")} subscribers, ${cpus().length} cores (${load()})`);
  const results: SizeResult[] = [];
  for (const n of ns) results.push(await runSize(n, threads));
  console.log(
    `\nall sizes, one run: join→event fan-out to N subscribers, and join throughput (no subscribers)`,
  );
  console.log(
    `  ${"N".padStart(6)}  ${"store".padEnd(10)}  ${"p50 ms".padStart(8)}  ${"p99 ms".padStart(8)}  ${"joins/s".padStart(8)}  load (fan-out; joins)`,
  );
  for (const r of results)
    for (const [store, x] of [
      ["SQLite", r.sqlite],
      ["2 replicas", r.replicas],
    ] as const)
      console.log(
        `  ${String(r.n).padStart(6)}  ${store.padEnd(10)}  ${f(percentile(x.lat, 50)).padStart(8)}  ${f(percentile(x.lat, 99)).padStart(8)}  ${f(x.joins).padStart(8)}  ${x.fanLoad}; ${x.joinLoad}`,
      );
}

if (process.argv[2] === "--floor-server") {
  runFloorServer();
} else if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
} else {
  runWorker(workerData as WorkerInput);
}
