// Engine benchmark (issue #9, acceptance 1): the CPU cost of one input to the
// join engine, and its memory per peer, in a settled mesh of N peers. One
// engine in this process, driven through its public API (createEngineState,
// step) under a simulated monotonic clock; no network, no root.
//
//   npm run bench:engine                      N = 100, 300, 1000
//   npm run bench:engine -- --n 100,1000 --batches 9
//
// The world: N peers with real Ed25519 identities (so probe pair keys are the
// real ones), realistic candidates (a private local IPv4 and a reflexive IPv4
// from 198.18.0.0/15 for peers behind NAT, a public IPv4 for public ones, an
// IPv6 address on every third peer) and a mix of NAT kinds. After `joined`,
// one stats input with a fresh handshake for every peer makes them all
// direct. Then simulated time runs at the rate of a settled mesh: one input
// every 30 s / N (each settled peer probes every 30 s), with the engine's own
// timers and a backend stats poll every 5 s delivered between the measured
// inputs, untimed. Inputs measured, each on its own:
//
//   valid probe     a ping from a known peer at its published address, fresh nonce, right MAC
//   bad MAC         the same with one MAC byte flipped
//   replayed        a ping the engine accepted just before (untimed), sent again
//   unknown sender  a well-formed ping from an identity not in the mesh
//   stats           backend stats for all N peers, 5 of them with a new handshake
//   peerJoin        one new peer joins the N-peer mesh (it leaves again, untimed)
//
// CPU time is process.cpuUsage() around each step() call (minus the cost of
// the two calls themselves, measured here), summed per batch; each figure is
// the median over batches of the batch mean, after a warm-up. The machine is
// shared, so the load average is printed with every run. Memory per peer is
// the V8 heap used after a forced GC (node --expose-gc) with the engine state
// built and settled, minus the heap before it, divided by N.

import { cpus, loadavg } from "node:os";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import {
  createEngineState,
  engineStatus,
  step,
  type EngineEffect,
  type EngineInput,
  type EngineState,
} from "../src/core/engine/index.js";
import { encodeProbe } from "../src/core/probe/codec.js";
import { probePairKey } from "../src/core/probe/mac.js";
import type { PeerStats } from "../src/core/backend.js";
import type { Candidate, Endpoint, Event, JoinResponse, NatInfo, Peer } from "../src/core/protocol.js";
import { identityFromSecret, peerIdOf, type Identity } from "../src/crypto/keys.js";
import { TIMER_PROFILES } from "../src/core/timers.js";
import { identityKeyer } from "../src/core/probe/mac.js";
import { percentile, textTable } from "../test/lab/checks.js";

const NETWORK = "bench";
const PROBE_PORT = 51871;
const LISTEN_PORT = 51870;
/** Epoch ms: handshake times from backends are wall-clock epoch ms. */
const T0 = 1_767_225_600_000;
/**
 * A settled peer probes every 30 s (the fast profile's settled gap, today
 * and after the engine split): the mesh's inputs arrive at that aggregate
 * rate. A constant rather than a profile field, so the bench does not follow
 * the profile's shape.
 */
const SETTLED_PROBE_GAP_MS = 30_000;
const STATS_POLL_MS = TIMER_PROFILES.fast.statsSettledMs;
/** WireGuard re-handshakes every 120 s (REKEY_AFTER_TIME); each peer's handshake time moves on that often. */
const REKEY_MS = 120_000;
const CHANGING_HANDSHAKES = 5;

/** Inputs per batch at most: a cheap input must not make the untimed preparation dominate the run. */
const MAX_BATCH = 400;
const TARGET_RATIO = 2;
const TARGET_REJECT_US = 20;

// ---- the simulated mesh ------------------------------------------------------

interface SimPeer {
  readonly identity: Identity;
  readonly peer: Peer;
  /** Where its probes come from (its published address it is known by). */
  readonly from: Endpoint;
  /** Its WireGuard endpoint as the backend reports it. */
  readonly wgEndpoint: string;
  /** Pair key, from the peer's side (the same bytes the engine derives). */
  key?: Uint8Array;
  handshakeMs: number;
  rx: number;
}

const NAT_MIX: readonly NatInfo[] = [
  { mapping: "endpoint-independent", portPreserved: true, ipv6: true },
  { mapping: "endpoint-independent", portPreserved: false, ipv6: false },
  { mapping: "none", ipv6: false },
  { mapping: "endpoint-independent", portPreserved: true, ipv6: false },
  { mapping: "endpoint-dependent", portPreserved: false, ipv6: true },
  { mapping: "endpoint-independent", portPreserved: true, ipv6: false },
];

const b64 = (n: number): string => randomBytes(n).toString("base64");

/** Peer number i (1-based): addresses derived from i so 1000+ peers never collide. */
function simPeer(i: number, identity: Identity): SimPeer {
  const nat = NAT_MIX[i % NAT_MIX.length] as NatInfo;
  const hi = (i >> 8) & 0xff;
  const lo = i & 0xff;
  const publicV4 = `198.18.${hi}.${lo}`;
  const v6 = i % 3 === 0 ? `2001:db8:${hi.toString(16)}:${lo.toString(16)}::1` : undefined;
  const candidates: Candidate[] = [];
  if (v6) candidates.push({ address: v6, port: PROBE_PORT, kind: "local" });
  if (nat.mapping === "none") {
    candidates.push({ address: publicV4, port: PROBE_PORT, kind: "local" });
  } else {
    candidates.push({ address: `10.${hi}.${lo}.2`, port: PROBE_PORT, kind: "local" });
    const port = nat.portPreserved ? PROBE_PORT : 40_000 + (i % 20_000);
    candidates.push({ address: publicV4, port, kind: "reflexive" });
  }
  const id = peerIdOf(identity.publicKey);
  const peer: Peer = {
    id,
    network: NETWORK,
    name: `edge-${i}`,
    identityKey: identity.publicKey,
    wgPublicKey: b64(32),
    listenPort: LISTEN_PORT,
    probePort: PROBE_PORT,
    candidates,
    nat,
    role: "edge",
    address: `10.200.${hi}.${lo}`,
    ...(i % 3 === 0 ? { address6: `fd00:beef::${i.toString(16)}` } : {}),
    joinedAt: T0 - 3_600_000,
    updatedAt: T0 - 3_600_000,
  };
  const wgPort = nat.mapping === "none" || nat.portPreserved ? LISTEN_PORT : 30_000 + (i % 20_000);
  return {
    identity,
    peer,
    from: { address: publicV4, port: candidates.at(-1)?.port ?? PROBE_PORT },
    wgEndpoint: `${publicV4}:${wgPort}`,
    handshakeMs: 0,
    rx: 0,
  };
}

/**
 * Ed25519 identities from random seeds through OpenSSL: ~1000 in well under
 * a second. Not generateKeyPairSync (generateIdentity): on node 20.20.2 a GC
 * that finalizes its jobs during a JWK export can deadlock the main thread.
 */
function identities(n: number): Identity[] {
  return Array.from({ length: n }, () => identityFromSecret(randomBytes(32)));
}

class Mesh {
  readonly self: Identity;
  readonly selfPeer: Peer;
  readonly peers: SimPeer[];
  st: EngineState;
  now = T0;
  private timerAt: number | undefined;
  private nextStatsAt = T0;
  private eventId = 1;
  private nonce = 0;
  private rotation = 0;
  /** xorshift32: the same peers are picked in every run. */
  private seed = 0x9e3779b9;
  private spare: SimPeer[] = [];
  private spareNo: number;

  constructor(
    readonly n: number,
    ids: Identity[],
  ) {
    this.self = ids[0] as Identity;
    this.selfPeer = {
      ...simPeer(0, this.self).peer,
      name: "bench-self",
      nat: { mapping: "endpoint-independent", portPreserved: true, ipv6: true },
      candidates: [
        { address: "2001:db8:ffff::1", port: PROBE_PORT, kind: "local" },
        { address: "10.255.0.2", port: PROBE_PORT, kind: "local" },
        { address: "198.19.255.1", port: PROBE_PORT, kind: "reflexive" },
      ],
    };
    this.peers = ids.slice(1, n + 1).map((id, i) => simPeer(i + 1, id));
    this.spareNo = n + 1;
    this.st = this.fresh();
  }

  fresh(): EngineState {
    return createEngineState(
      {
        profile: TIMER_PROFILES.fast,
        identity: identityKeyer(this.self),
        nonceSalt: "b0b0b0b0",
        probePort: PROBE_PORT,
      },
      ["2001:db8:ffff::1", "10.255.0.2"],
      {
        mapping: "endpoint-independent",
        portPreserved: true,
        ipv4: { public: { address: "198.19.255.1", port: PROBE_PORT } },
        ipv6: { reachable: true, public: { address: "2001:db8:ffff::1", port: PROBE_PORT } },
        latencies: [],
      },
    );
  }

  joinResponse(): JoinResponse {
    return {
      self: this.selfPeer,
      network: { name: NETWORK, cidr: "10.200.0.0/16", topology: "mesh", createdAt: T0 - 86_400_000 },
      peers: [this.selfPeer, ...this.peers.map((p) => p.peer)],
      lastEventId: 0,
      registryKey: b64(32),
      reflectorPorts: [8470, 8471],
    };
  }

  step(input: EngineInput): EngineEffect[] {
    const { state, effects } = step(this.st, input, this.now);
    this.st = state;
    for (const e of effects) {
      if (e.type === "setTimer") this.timerAt = this.now + e.delayMs;
      else if (e.type === "clearTimer") this.timerAt = undefined;
    }
    return effects;
  }

  /** joined, then one stats read with a fresh handshake for everyone: a settled, all-direct mesh. */
  settle(copy = false): void {
    const response = copy ? structuredClone(this.joinResponse()) : this.joinResponse();
    this.step({ type: "joined", response, existing: [] });
    this.now += 40;
    for (const p of this.peers) p.handshakeMs = this.now - 10;
    this.step({ type: "stats", stats: this.stats(0) });
    this.now += 10;
    this.nextStatsAt = this.now + STATS_POLL_MS;
  }

  /** Backend stats for all peers; `changing` of them (round robin) got a new handshake just now. */
  stats(changing: number): PeerStats[] {
    for (let k = 0; k < changing; k++) {
      const p = this.peers[(this.rotation++ * 7919) % this.peers.length] as SimPeer;
      p.handshakeMs = this.now - 1;
    }
    return this.peers.map((p) => {
      // Every handshake renews within REKEY_MS in a live mesh.
      if (this.now - p.handshakeMs > REKEY_MS) p.handshakeMs = this.now - 1;
      p.rx += 148;
      return {
        publicKey: p.peer.wgPublicKey,
        endpoint: p.wgEndpoint,
        lastHandshakeMs: p.handshakeMs,
        rxBytes: p.rx,
        txBytes: p.rx + 92,
      };
    });
  }

  /**
   * Moves simulated time to the next input: one input per settled probe gap
   * per peer. Whatever falls due on the way (the engine's tick, the stats
   * poll) is delivered here, outside the measurement.
   */
  advance(): void {
    this.now += Math.max(1, Math.round(SETTLED_PROBE_GAP_MS / this.n));
    if (this.timerAt !== undefined && this.timerAt <= this.now) this.step({ type: "timer", name: "tick" });
    if (this.nextStatsAt <= this.now) {
      this.step({ type: "stats", stats: this.stats(0) });
      this.nextStatsAt = this.now + STATS_POLL_MS;
    }
  }

  keyOf(p: SimPeer): Uint8Array {
    p.key ??= probePairKey(p.identity.secretKey, p.identity.publicKey, this.self.publicKey);
    return p.key;
  }

  randomPeer(): SimPeer {
    this.seed ^= this.seed << 13;
    this.seed ^= this.seed >>> 17;
    this.seed ^= this.seed << 5;
    return this.peers[(this.seed >>> 0) % this.peers.length] as SimPeer;
  }

  ping(p: SimPeer, key = this.keyOf(p)): Uint8Array {
    const nonce = (this.nonce++).toString(16).padStart(16, "0");
    return encodeProbe({ type: "ping", sender: p.peer.id, nonce, time: this.now }, key);
  }

  probeInput(p: SimPeer, bytes: Uint8Array): EngineInput {
    return { type: "probeReceived", from: p.from, bytes };
  }

  /** A peer that is not in the mesh yet (its identity made outside any measurement). */
  newcomer(): SimPeer {
    if (this.spare.length === 0) this.spare = identities(64).map((id) => simPeer(this.spareNo++, id));
    return this.spare.pop() as SimPeer;
  }

  event(e: Omit<Event, "id" | "network" | "from" | "ts">): EngineInput {
    return {
      type: "event",
      event: { ...e, id: this.eventId++, network: NETWORK, from: "registry", ts: this.now } as Event,
    };
  }
}

// ---- measuring ---------------------------------------------------------------

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** What two cpuUsage() calls around nothing cost; subtracted from every sample. */
function timerOverheadUs(): number {
  const k = 20_000;
  let total = 0;
  for (let i = 0; i < k; i++) {
    const a = cpuUs();
    total += cpuUs() - a;
  }
  return total / k;
}

interface Kind {
  readonly name: string;
  /** Untimed preparation; returns the input, and what to do after it (untimed). */
  prepare(m: Mesh): { input: EngineInput; after?: () => void };
  /** Rows of work in one input, to print a per-row figure (stats). */
  rows?(m: Mesh): number;
}

const KINDS: readonly Kind[] = [
  {
    name: "valid probe",
    prepare: (m) => {
      const p = m.randomPeer();
      return { input: m.probeInput(p, m.ping(p)) };
    },
  },
  {
    name: "rejected: bad MAC",
    prepare: (m) => {
      const p = m.randomPeer();
      const bytes = m.ping(p);
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
      return { input: m.probeInput(p, bytes) };
    },
  },
  {
    name: "rejected: replayed",
    prepare: (m) => {
      const p = m.randomPeer();
      const bytes = m.ping(p);
      m.step(m.probeInput(p, bytes)); // accepted once, outside the measurement
      return { input: m.probeInput(p, bytes) };
    },
  },
  {
    name: "rejected: unknown sender",
    prepare: (m) => {
      const stranger = m.newcomer();
      return { input: m.probeInput(stranger, m.ping(stranger, m.keyOf(stranger))) };
    },
  },
  {
    name: "stats",
    prepare: (m) => ({ input: { type: "stats", stats: m.stats(CHANGING_HANDSHAKES) } }),
    rows: (m) => m.n,
  },
  {
    name: "peerJoin",
    prepare: (m) => {
      const p = m.newcomer();
      return {
        input: m.event({ type: "cc.ltgc.scope:peerJoin", body: p.peer }),
        after: () => {
          m.now += 1;
          m.step(m.event({ type: "cc.ltgc.scope:peerLeave", body: { peerId: p.peer.id, reason: "left" } }));
        },
      };
    },
  },
];

interface Figure {
  /** Median over batches of the mean CPU µs per input. */
  cpuUs: number;
  /** The same in wall-clock µs (performance.now), for comparison. */
  wallUs: number;
  /** Spread of the batch means: min and max. */
  minUs: number;
  maxUs: number;
  inputs: number;
}

function measure(m: Mesh, kind: Kind, overheadUs: number, batches: number, batchCpuUs: number): Figure {
  const one = (): { cpu: number; wall: number } => {
    m.advance();
    const { input, after } = kind.prepare(m);
    const w0 = performance.now();
    const c0 = cpuUs();
    m.step(input);
    const c1 = cpuUs();
    const w1 = performance.now();
    after?.();
    return { cpu: c1 - c0 - overheadUs, wall: (w1 - w0) * 1000 };
  };
  // Warm-up: the JIT and the state's steady shape (seen nonces, pings out).
  for (let spent = 0, i = 0; (spent < 2 * batchCpuUs && i < 2 * MAX_BATCH) || i < 20; i++) spent += one().cpu;
  const cpuMeans: number[] = [];
  const wallMeans: number[] = [];
  let inputs = 0;
  for (let b = 0; b < batches; b++) {
    let cpu = 0;
    let wall = 0;
    let i = 0;
    for (; (cpu < batchCpuUs && i < MAX_BATCH) || i < 10; i++) {
      const s = one();
      cpu += s.cpu;
      wall += s.wall;
    }
    inputs += i;
    cpuMeans.push(cpu / i);
    wallMeans.push(wall / i);
  }
  return {
    cpuUs: percentile(cpuMeans, 50),
    wallUs: percentile(wallMeans, 50),
    minUs: Math.min(...cpuMeans),
    maxUs: Math.max(...cpuMeans),
    inputs,
  };
}

/**
 * Heap held by settled engines of N peers, per peer. Several engines, so the
 * figure for a small N is not lost in the heap's noise; a first one built
 * before the baseline, so what V8 allocates once per shape (code, feedback)
 * is not counted. Each engine gets its own copy of the join response, as
 * the daemon's is parsed from JSON: the peer records it keeps are its state.
 */
function memoryPerPeer(n: number, ids: Identity[]): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return NaN;
  const count = Math.ceil(1000 / n);
  const warm = new Mesh(n, ids);
  warm.settle();
  const meshes = Array.from({ length: count }, () => new Mesh(n, ids));
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (const m of meshes) m.settle(true);
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  const peersOf = (m: Mesh): number => engineStatus(m.st).peers.length;
  if (meshes.some((m) => peersOf(m) !== peersOf(warm))) throw new Error("memory: engines differ");
  return (after - before) / (count * n);
}

// ---- report ------------------------------------------------------------------

const us = (x: number): string =>
  Number.isNaN(x) ? "-" : x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(1)} µs`;
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

function main(): number {
  const { values } = parseArgs({
    options: {
      n: { type: "string", default: "100,300,1000" },
      batches: { type: "string", default: "7" },
      "batch-ms": { type: "string", default: "40" },
    },
  });
  const ns = (values.n ?? "").split(",").map(Number);
  if (ns.some((n) => !Number.isInteger(n) || n < 2)) throw new Error("--n: a list of peer counts ≥ 2");
  const batches = Math.max(3, Number(values.batches));
  const batchCpuUs = Math.max(5, Number(values["batch-ms"])) * 1000;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  console.log(
    `bench:engine: one engine in-process, N = ${ns.join(", ")} peers, fast profile, simulated clock`,
  );
  console.log(`  node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}`);
  console.log(`  load average at start: ${load()}`);
  if (!(globalThis as { gc?: unknown }).gc) console.log("  (no --expose-gc: memory per peer not measured)");

  const maxN = Math.max(...ns);
  const t = performance.now();
  const ids = identities(maxN + 1);
  console.log(`  ${maxN + 1} Ed25519 identities in ${((performance.now() - t) / 1000).toFixed(2)} s`);
  const overheadUs = timerOverheadUs();
  console.log(`  cpuUsage() pair overhead ${overheadUs.toFixed(2)} µs, subtracted from every sample`);

  // Warm the engine's code once on a small mesh, so the first N does not pay for the JIT alone.
  memoryPerPeer(20, ids);

  const results = new Map<number, Map<string, Figure>>();
  const memory = new Map<number, number>();
  for (const n of ns) {
    memory.set(n, memoryPerPeer(n, ids));
    const m = new Mesh(n, ids);
    const t0 = performance.now();
    m.settle();
    const setupMs = performance.now() - t0;
    const direct = engineStatus(m.st).peers.filter((p) => p.path === "direct").length;
    const perKind = new Map<string, Figure>();
    for (const kind of KINDS) perKind.set(kind.name, measure(m, kind, overheadUs, batches, batchCpuUs));
    results.set(n, perKind);
    console.log("");
    console.log(
      `N = ${n}: joined + settled in ${setupMs.toFixed(0)} ms wall (${direct}/${n} direct); ` +
        `simulated time ${((m.now - T0) / 1000).toFixed(0)} s, one input per ${Math.max(1, Math.round(SETTLED_PROBE_GAP_MS / n))} ms; load ${load()}`,
    );
    console.log(
      textTable(
        ["input", "CPU/input", "min batch", "max batch", "wall/input", "inputs", "per row"],
        KINDS.map((k) => {
          const f = perKind.get(k.name) as Figure;
          const rows = k.rows?.(m);
          return [
            k.name,
            us(f.cpuUs),
            us(f.minUs),
            us(f.maxUs),
            us(f.wallUs),
            String(f.inputs),
            rows ? `${us(f.cpuUs / rows)} (${rows} rows)` : "",
          ];
        }),
      ),
    );
    const mem = memory.get(n) ?? NaN;
    console.log(
      `memory: ${Number.isNaN(mem) ? "-" : `${(mem / 1024).toFixed(1)} KiB per peer`} (heap after GC: settled engine state incl. its peer records / N)`,
    );
  }

  const lo = Math.min(...ns);
  const hi = Math.max(...ns);
  const verdict = (ok: boolean): string => (ok ? "met" : "MISSED");
  console.log("");
  console.log(
    `scaling N=${hi} / N=${lo} (target: within ${TARGET_RATIO}×; rejected probes ≤ ${TARGET_REJECT_US} µs at any N)`,
  );
  const rows: string[][] = [];
  for (const k of KINDS) {
    const a = results.get(lo)?.get(k.name) as Figure;
    const b = results.get(hi)?.get(k.name) as Figure;
    // A stats input carries one row per peer, so its size grows with N by
    // construction: the scale test is its cost per row.
    const perRow = k.name === "stats";
    const ratio = perRow ? b.cpuUs / hi / (a.cpuUs / lo) : b.cpuUs / a.cpuUs;
    const marks = [`${verdict(ratio <= TARGET_RATIO)}${perRow ? " (per row)" : ""}`];
    if (k.name.startsWith("rejected")) {
      const worst = Math.max(...ns.map((n) => results.get(n)?.get(k.name)?.cpuUs ?? Infinity));
      marks.push(`≤ ${TARGET_REJECT_US} µs ${verdict(worst <= TARGET_REJECT_US)} (worst ${us(worst)})`);
    }
    rows.push([
      k.name,
      ...ns.map((n) => us(results.get(n)?.get(k.name)?.cpuUs ?? NaN)),
      `${ratio.toFixed(1)}×`,
      marks.join("; "),
    ]);
  }
  const memLo = memory.get(lo) ?? NaN;
  const memHi = memory.get(hi) ?? NaN;
  rows.push([
    "memory per peer",
    ...ns.map((n) => `${((memory.get(n) ?? NaN) / 1024).toFixed(1)} KiB`),
    `${(memHi / memLo).toFixed(1)}×`,
    "",
  ]);
  console.log(
    textTable(["input (CPU per input)", ...ns.map((n) => `N=${n}`), `${hi}/${lo}`, "target"], rows),
  );
  const cpu = process.cpuUsage(cpu0);
  console.log("");
  console.log(
    `bench:engine took ${((performance.now() - started) / 1000).toFixed(1)} s wall, ` +
      `${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU; load average at the end: ${load()}`,
  );
  return 0;
}

try {
  process.exitCode = main();
} catch (e: unknown) {
  console.error(`bench:engine failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
}
