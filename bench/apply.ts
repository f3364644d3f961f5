// wg backend apply benchmark (issue #9, acceptance 1): 1 000 peers applied
// to a fresh wireguard-go interface through the wg backend (createWgBackend,
// flavour wireguard-go, its UAPI socket), then one peer added, next to the
// floor measured in the same run: one `wg setconf` of the same 1 000 peers
// on another fresh wireguard-go interface, and one `wg set` of one peer.
//
//   npm run bench:apply                   5 repetitions of 1 000 peers
//   npm run bench:apply -- --peers 2000 --reps 7
//
// Each repetition starts two wireguard-go processes in one network namespace
// (fresh, empty, down interfaces), then times, in alternating order:
//   backend   WgBackend.apply() of 1 000 peers: UAPI get, UAPI set, then
//             `ip` reads the link and adds the address and brings it up
//   floor     `ip netns exec NS wg setconf IFACE FILE` with the same peers
//             (the file is 0600 in a scratch dir; no key on any argv)
// then three single-peer additions on each. A third interface per repetition
// is created by the backend itself (wireguard-go started by apply): printed
// for information, not against a target. Figures are wall-clock medians: the
// work is spread over node, ip, wg and wireguard-go. Needs root; takes the
// lab lock (test/lab/lock.ts) so it never overlaps a lab test; the
// namespace, interfaces, sockets and scratch dir carry the lab prefix, so
// test/lab/cleanup.ts would sweep what a SIGKILLed run left.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { BackendContext, DesiredPeer, DesiredState } from "../src/core/backend.js";
import { wgKeyPairFromPrivate, type WgKeyPair } from "../src/crypto/keys.js";
import { execRunner } from "../src/exec.js";
import { createWgBackend } from "../plugins/wg/index.js";
import { percentile, textTable } from "../test/lab/checks.js";
import { LAB_TMP_PREFIX, WG_SOCKET_DIR } from "../test/lab/cleanup.js";
import { acquireLabLock, LAB_LOCK, releaseLabLock } from "../test/lab/lock.js";
import { LAB_ENV } from "../test/lab/netns.js";
import { LAB_PREFIX } from "../test/lab/world.js";

const NS = `${LAB_PREFIX}bench-apply`;
/** Interface names: prefix, role (b backend, f floor, c created by the backend), repetition. ≤ 15 chars. */
const ifaceName = (role: "b" | "f" | "c", rep: number): string => `${LAB_PREFIX}ba-${role}${rep}`;
const TARGET_RATIO = 1.5;
const TARGET_ADD_MS = 20;
const ADDS_PER_REP = 3;

const silent = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

// ---- cleanup: by pid and by exact name, always --------------------------------

const children = new Set<ChildProcess>();
const ifaces = new Set<string>();
let scratch: string | undefined;
let nsCreated = false;
let cleaned = false;

function sh(argv: string[], input?: string): { code: number; out: string } {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd as string, args, { encoding: "utf8", env: LAB_ENV, input: input ?? "" });
  return { code: r.status ?? 128, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

function must(argv: string[]): string {
  const r = sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.out.trim()}`);
  return r.out;
}

/** A wireguard-go the backend started (detached, pid file in its state dir), if it still is one of ours. */
function backendPid(iface: string): number | undefined {
  if (!scratch) return undefined;
  try {
    const pid = Number(readFileSync(join(scratch, "state", `wireguard-go-${iface}.pid`), "utf8").trim());
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((a) => a.endsWith("wireguard-go")) && argv.includes(iface) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Synchronous: runs from "exit" and signal handlers. Only what this run made, by pid and exact name. */
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const iface of ifaces) {
    const pid = backendPid(iface);
    if (nsCreated) sh(["ip", "-n", NS, "link", "del", "dev", iface]);
    if (pid !== undefined) signal(pid, "SIGTERM");
  }
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) signal(c.pid, "SIGTERM");
  for (const iface of ifaces) rmSync(join(WG_SOCKET_DIR, `${iface}.sock`), { force: true });
  if (nsCreated) sh(["ip", "netns", "delete", NS]);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  releaseLabLock();
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    console.error(`bench:apply: ${sig}, cleaning up`);
    cleanup();
    process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
  });
}

// ---- the world -------------------------------------------------------------------

/** Peer i: a /32 and (every third) a /128, an endpoint in 198.18.0.0/15, keepalive as the engine sets it. */
function peerOf(i: number, key: WgKeyPair): DesiredPeer {
  const hi = (i >> 8) & 0xff;
  const lo = i & 0xff;
  return {
    publicKey: key.publicKey,
    endpoint: `198.18.${hi}.${lo}:51870`,
    allowedIps: [`10.200.${hi}.${lo}/32`, ...(i % 3 === 0 ? [`fd00:beef::${i.toString(16)}/128`] : [])],
    persistentKeepalive: 25,
  };
}

/** wg(8) config text for setconf: the same peers, in the same order. */
function wgConfig(privateKey: string, listenPort: number, peers: readonly DesiredPeer[]): string {
  const lines = ["[Interface]", `PrivateKey = ${privateKey}`, `ListenPort = ${listenPort}`];
  for (const p of peers) {
    lines.push("", "[Peer]", `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.allowedIps.join(", ")}`);
    if (p.endpoint) lines.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Starts wireguard-go for iface in the namespace and waits for its UAPI socket: a fresh, empty, down interface. */
async function startWireguardGo(iface: string): Promise<ChildProcess> {
  ifaces.add(iface);
  const child = spawn("ip", ["netns", "exec", NS, "wireguard-go", "-f", iface], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...LAB_ENV, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1", LOG_LEVEL: "error" },
  });
  children.add(child);
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const sock = join(WG_SOCKET_DIR, `${iface}.sock`);
  for (let waited = 0; !existsSync(sock); waited += 20) {
    if (child.exitCode !== null) throw new Error(`wireguard-go ${iface} exited: ${err.trim()}`);
    if (waited > 5000) throw new Error(`wireguard-go ${iface}: no UAPI socket after 5 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return child;
}

/** Deletes the link (wireguard-go then exits and removes its socket) and waits for that. */
async function stopInterface(iface: string, child?: ChildProcess): Promise<void> {
  const pid = backendPid(iface);
  sh(["ip", "-n", NS, "link", "del", "dev", iface]);
  const sock = join(WG_SOCKET_DIR, `${iface}.sock`);
  for (let waited = 0; existsSync(sock) || (child && child.exitCode === null); waited += 20) {
    if (waited > 3000) {
      if (child?.pid !== undefined) signal(child.pid, "SIGTERM");
      if (pid !== undefined) signal(pid, "SIGTERM");
      rmSync(sock, { force: true });
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (child) children.delete(child);
  ifaces.delete(iface);
}

/**
 * The lab lock, held for sure. acquireLabLock writes the pid after creating
 * the file, and a waiter that reads the file in between sees no owner, takes
 * it for stale and takes the lock too (seen here: a lab test that started
 * at that moment swept this bench's namespace). So look again after a
 * moment and queue again if the file no longer names this process.
 */
async function takeLabLock(): Promise<void> {
  for (;;) {
    // A lab suite or the demo can hold it for a long while: queue rather than give up.
    await acquireLabLock(45 * 60_000);
    await new Promise((r) => setTimeout(r, 1000));
    const owner = existsSync(LAB_LOCK) ? readFileSync(LAB_LOCK, "utf8").trim() : "";
    if (owner === String(process.pid)) return;
    console.error("bench:apply: lost the lab lock to a racing waiter; queueing again");
  }
}

/**
 * Any 32 random bytes are an X25519 private key (WireGuard clamps them).
 * Not generateKeyPairSync: on node 20.20.2 a GC that finalizes its jobs
 * during a JWK export can deadlock the main thread (seen twice here, stack
 * in KeyGenJob::~KeyGenJob under KeyObjectHandle::ExportJWK).
 */
const wgKeyPair = (): WgKeyPair => wgKeyPairFromPrivate(randomBytes(32).toString("base64"));

const since = (t: number): number => performance.now() - t;

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return since(t);
}

function run(argv: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd as string, args, { stdio: ["pipe", "ignore", "pipe"], env: LAB_ENV });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input ?? "");
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${argv.join(" ")}: exit ${code}: ${err.trim()}`)),
    );
  });
}

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
const ms = (x: number): string => `${x.toFixed(x >= 100 ? 0 : 1)} ms`;

interface Sample {
  backend: number[];
  floor: number[];
  create: number[];
  addBackend: number[];
  addFloor: number[];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { peers: { type: "string", default: "1000" }, reps: { type: "string", default: "5" } },
  });
  const n = Number(values.peers);
  const reps = Math.max(3, Number(values.reps));
  if (!Number.isInteger(n) || n < 1 || n > 60_000) throw new Error("--peers: 1..60000");
  if (process.getuid?.() !== 0) {
    console.error("bench:apply: needs root (a network namespace, TUN devices, /var/run/wireguard)");
    return 2;
  }
  for (const tool of ["wireguard-go", "wg", "ip"]) {
    if (sh(["sh", "-c", `command -v ${tool}`]).code !== 0) {
      console.error(`bench:apply: ${tool} not installed (run test/setup.sh lab)`);
      return 2;
    }
  }
  await takeLabLock();
  const wgGo = sh(["wireguard-go", "--version"]).out.split("\n")[0] ?? "";
  console.log(`bench:apply: ${n} peers onto fresh wireguard-go interfaces, ${reps} repetitions (${wgGo})`);
  console.log(`  load average at start: ${load()}`);

  if (
    sh(["ip", "netns", "list"])
      .out.split("\n")
      .some((l) => l.split(" ")[0] === NS)
  ) {
    // A leftover of a killed run of this bench (we hold the lab lock: no one else uses it).
    sh(["ip", "netns", "delete", NS]);
  }
  must(["ip", "netns", "add", NS]);
  nsCreated = true;
  must(["ip", "-n", NS, "link", "set", "lo", "up"]);
  scratch = mkdtempSync(join(tmpdir(), LAB_TMP_PREFIX));
  mkdirSync(join(scratch, "state"), { mode: 0o700 });

  const t = performance.now();
  const keys = Array.from({ length: n + reps * ADDS_PER_REP }, () => wgKeyPair());
  const peers = keys.slice(0, n).map((k, i) => peerOf(i + 1, k));
  const extra = keys.slice(n).map((k, i) => peerOf(n + i + 1, k));
  console.log(`  ${keys.length} WireGuard key pairs in ${since(t).toFixed(0)} ms`);

  const ctx: BackendContext = {
    network: "bench",
    stateDir: join(scratch, "state"),
    logger: silent,
    options: { netns: NS, flavour: "wireguard-go" },
  };
  const s: Sample = { backend: [], floor: [], create: [], addBackend: [], addFloor: [] };

  for (let rep = 1; rep <= reps; rep++) {
    const self = wgKeyPair();
    const desired = (list: readonly DesiredPeer[], name: string): DesiredState => ({
      iface: { name, privateKey: self.privateKey, listenPort: 51000 + rep, addresses: ["10.200.255.254/16"] },
      peers: [...list],
    });
    const bIf = ifaceName("b", rep);
    const fIf = ifaceName("f", rep);
    const cIf = ifaceName("c", rep);
    const bChild = await startWireguardGo(bIf);
    const fChild = await startWireguardGo(fIf);
    const conf = join(scratch, `${fIf}.conf`);
    writeFileSync(conf, wgConfig(self.privateKey, 52000 + rep, peers), { mode: 0o600 });
    const backend = createWgBackend(ctx, { runner: execRunner({ netns: NS }) });

    const doBackend = async (): Promise<void> => {
      s.backend.push(await timed(() => backend.apply(desired(peers, bIf))));
    };
    const doFloor = async (): Promise<void> => {
      s.floor.push(await timed(() => run(["ip", "netns", "exec", NS, "wg", "setconf", fIf, conf])));
    };
    // Alternate which goes first: whatever the first one warms (page cache, CPU clock) is shared.
    if (rep % 2 === 1) {
      await doBackend();
      await doFloor();
    } else {
      await doFloor();
      await doBackend();
    }

    const added: DesiredPeer[] = [...peers];
    for (let k = 0; k < ADDS_PER_REP; k++) {
      const p = extra[(rep - 1) * ADDS_PER_REP + k] as DesiredPeer;
      added.push(p);
      s.addBackend.push(await timed(() => backend.apply(desired(added, bIf))));
      const args = ["peer", p.publicKey, "allowed-ips", p.allowedIps.join(","), "persistent-keepalive", "25"];
      s.addFloor.push(
        await timed(() =>
          run(["ip", "netns", "exec", NS, "wg", "set", fIf, ...args, "endpoint", p.endpoint as string]),
        ),
      );
    }
    const live = (await backend.stats()).length;
    if (live !== n + ADDS_PER_REP)
      throw new Error(`${bIf}: ${live} peers after the adds, not ${n + ADDS_PER_REP}`);

    // The same apply onto an interface that does not exist yet: the backend starts wireguard-go itself.
    const creator = createWgBackend(ctx, { runner: execRunner({ netns: NS }) });
    ifaces.add(cIf);
    const created = {
      ...desired(peers, cIf),
      iface: { ...desired(peers, cIf).iface, listenPort: 53000 + rep },
    };
    s.create.push(await timed(() => creator.apply(created)));

    console.log(
      `  rep ${rep}: backend ${ms(s.backend.at(-1) ?? NaN)}, floor ${ms(s.floor.at(-1) ?? NaN)}, ` +
        `+1 peer ${s.addBackend
          .slice(-ADDS_PER_REP)
          .map(ms)
          .join(" / ")} (wg set ${s.addFloor.slice(-ADDS_PER_REP).map(ms).join(" / ")}), ` +
        `creating ${ms(s.create.at(-1) ?? NaN)}; load ${load()}`,
    );
    await creator.close({ remove: true });
    ifaces.delete(cIf);
    await stopInterface(bIf, bChild);
    await stopInterface(fIf, fChild);
  }

  const med = (xs: number[]): number => percentile(xs, 50);
  const ratio = med(s.backend) / med(s.floor);
  const verdict = (ok: boolean): string => (ok ? "met" : "MISSED");
  console.log("");
  console.log(
    `${n} peers, wall-clock medians over ${reps} repetitions (single-peer adds: ${reps * ADDS_PER_REP})`,
  );
  console.log(
    textTable(
      ["what", "median", "min", "max", "vs floor", "target"],
      [
        [
          "backend apply, fresh interface",
          s.backend,
          med(s.floor),
          `≤ ${TARGET_RATIO}× floor: ${verdict(ratio <= TARGET_RATIO)}`,
        ],
        ["floor: wg setconf", s.floor, med(s.floor), ""],
        [
          "backend apply, +1 peer",
          s.addBackend,
          med(s.addFloor),
          `≤ ${TARGET_ADD_MS} ms: ${verdict(med(s.addBackend) <= TARGET_ADD_MS)}`,
        ],
        ["floor: wg set, +1 peer", s.addFloor, med(s.addFloor), ""],
        ["backend apply, creating wireguard-go", s.create, med(s.floor), "(information)"],
      ].map(([what, xs, floor, target]) => {
        const v = xs as number[];
        return [
          what as string,
          ms(med(v)),
          ms(Math.min(...v)),
          ms(Math.max(...v)),
          `${(med(v) / (floor as number)).toFixed(2)}×`,
          target as string,
        ];
      }),
    ),
  );
  console.log(`load average at the end: ${load()}`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    cleanup();
  },
  (e: unknown) => {
    console.error(`bench:apply failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
    cleanup();
  },
);
