/**
 * Whole daemons in-process: the real Daemon of src/daemon/runtime.ts, each
 * with a FakeBackend in front of a SimWg, its probe socket on the SimNet, a
 * simulated netcheck, and its registry client talking to a real registry app
 * (createRegistryApp on a SQLite file in a temp dir) through an in-process
 * transport. Everything runs on one FakeClock: the registry's signatures,
 * replay window and event times follow it too.
 *
 * Time moves only in advance(): the clock steps a few ms, then the I/O the
 * steps set off (promises, koa, streams) is let run before the next step.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryClient } from "../../../src/client/registry-client.js";
import { FakeBackend } from "../../../src/core/fake-backend.js";
import {
  computeNetcheck,
  natInfoOf,
  type NetcheckReport,
  type ReflectorObservation,
} from "../../../src/core/netcheck.js";
import type { Endpoint, Network, PathRecord } from "../../../src/core/protocol.js";
import { EdgeConfig } from "../../../src/config/schema.js";
import { generateIdentity, generateWgKeyPair, peerIdOf, sha256Hex } from "../../../src/crypto/keys.js";
import type { JoinState } from "../../../src/daemon/files.js";
import type { ProbeTransport, DatagramHandler } from "../../../src/daemon/udp.js";
import { Daemon, type DaemonDeps } from "../../../src/daemon/runtime.js";
import type { Logger } from "../../../src/log.js";
import { createRegistryApp } from "../../../src/registry/app.js";
import { EventHub } from "../../../src/registry/events.js";
import { Metrics } from "../../../src/registry/metrics.js";
import { SqliteStore } from "../../../src/registry/sqlite-store.js";
import { silentLogger } from "../../../src/core/logger.js";
import type { FakeClock } from "./fake-clock.js";
import type { HttpRequest, HttpTransport } from "../../../src/client/http.js";
import { inProcessTransport, type Handler } from "./inproc-http.js";
import { SimNet, type SimHost, type SimHostSpec } from "./simnet.js";
import { SimWg } from "./sim-wg.js";

export const LISTEN_PORT = 51820;
export const PROBE_PORT = 51821;
const REFLECTOR_PORTS: [number, number] = [8470, 8471];
const NETWORK = "lab";
const TOKEN = "join-token-for-the-simulator";

/** The registry, in-process: a koa app over a SQLite file; restart() builds a new app on the same file. */
export class InProcessRegistry {
  readonly dir = mkdtempSync(join(tmpdir(), "scope-sim-registry-"));
  readonly identity = generateIdentity();
  private store: SqliteStore | undefined;
  private hub: EventHub | undefined;
  private handler: Handler | undefined;

  constructor(
    private readonly clock: FakeClock,
    readonly host: SimHost,
  ) {}

  get up(): boolean {
    return this.handler !== undefined;
  }

  async start(): Promise<void> {
    const store = new SqliteStore(join(this.dir, "registry.db"));
    const hub = new EventHub(undefined, undefined, this.clock);
    store.onEvent((e) => hub.publish(e));
    this.store = store;
    this.hub = hub;
    this.handler = createRegistryApp({
      store,
      hub,
      metrics: new Metrics(),
      clock: this.clock,
      log: silentLogger,
      registryIdentity: this.identity,
      reflectorPorts: REFLECTOR_PORTS,
      adminTokenHash: undefined,
    }).callback();
    if (!(await store.getNetwork(NETWORK))) {
      const now = this.clock.now();
      const network: Network = { name: NETWORK, cidr: "10.88.0.0/16", topology: "mesh", createdAt: now };
      await store.createNetwork(network);
      await store.createToken({
        id: "sim",
        network: NETWORK,
        hash: sha256Hex(TOKEN),
        uses: 1_000,
        expiresAt: now + 24 * 3600_000,
        createdAt: now,
        role: "edge",
      });
    }
  }

  /** What the members last reported about their paths (the web view's data, issue 16). */
  paths(): Promise<PathRecord[]> {
    if (!this.store) throw new Error("registry is down");
    return this.store.listPaths(NETWORK);
  }

  /** Down: open event streams end, requests are refused until start(). */
  stop(): void {
    this.handler = undefined;
    this.hub?.close();
    this.store?.close();
    this.hub = this.store = undefined;
  }

  async restart(): Promise<void> {
    this.stop();
    await this.start();
  }

  /** Requests for which this holds get no answer (an overloaded registry: "no answer in time"). */
  unanswered: ((req: HttpRequest) => boolean) | undefined;

  /** Answers to requests for which this gives a number come that many ms late (on the fake clock). */
  lateBy: ((req: HttpRequest) => number) | undefined;
  /**
   * Like lateBy, but the registry handles the request at once and only its
   * answer is held back: what it says is that many ms old when it arrives
   * (a peer list read by an overloaded registry, its answer queued behind others).
   */
  answerLateBy: ((req: HttpRequest) => number) | undefined;
  /** Each daemon's requests under way, by method and path: what lateBy lets overlap. */
  readonly inFlight = new Map<string, number>();
  maxInFlight = new Map<string, number>();

  transport(remote: string): HttpTransport {
    const inner = inProcessTransport(() => this.handler, remote);
    return async (req) => {
      if (this.unanswered?.(req)) throw Object.assign(new Error("no answer in time"), { code: "ETIMEDOUT" });
      const key = `${remote} ${req.method} ${req.path}`;
      const n = (this.inFlight.get(key) ?? 0) + 1;
      this.inFlight.set(key, n);
      this.maxInFlight.set(key, Math.max(n, this.maxInFlight.get(key) ?? 0));
      try {
        const ms = this.lateBy?.(req) ?? 0;
        if (ms > 0) await new Promise((r) => this.clock.setTimer(ms, () => r(undefined)));
        const res = await inner(req);
        const old = this.answerLateBy?.(req) ?? 0;
        if (old > 0) await new Promise((r) => this.clock.setTimer(old, () => r(undefined)));
        return res;
      } finally {
        this.inFlight.set(key, (this.inFlight.get(key) ?? 1) - 1);
      }
    };
  }

  dispose(): void {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The probe socket of a daemon, on the SimNet. */
class SimProbeSocket implements ProbeTransport {
  onProbe: DatagramHandler = () => undefined;
  onReflector: DatagramHandler = () => undefined;
  constructor(
    private readonly net: SimNet,
    private readonly host: SimHost,
    private readonly port: number,
  ) {}
  open(): Promise<void> {
    this.net.bind(this.host, this.port, (from, bytes) => this.onProbe(from, bytes as Uint8Array));
    return Promise.resolve();
  }
  send(to: Endpoint, bytes: Uint8Array): void {
    this.net.send(this.host, this.port, to, bytes);
  }
  close(): void {
    this.net.unbind(this.host, this.port);
  }
}

/** Log lines of one daemon, for a failing test to show. */
function captureLogger(lines: string[], clock: FakeClock, name: string): Logger {
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    lines.push(`${clock.now()} ${level} ${name}: ${msg}${fields ? " " + JSON.stringify(fields) : ""}`);
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

export class DaemonNode {
  readonly identity = generateIdentity();
  readonly wgKeys = generateWgKeyPair();
  readonly wg: SimWg;
  readonly logs: string[] = [];
  backend: FakeBackend;
  daemon: Daemon | undefined;
  exitCode: number | undefined;
  /** Replaces the simulated netcheck (e.g. one that hangs until the daemon stops). */
  netcheckHook: ((signal: AbortSignal) => Promise<NetcheckReport>) | undefined;
  private joined: JoinState | undefined;

  constructor(
    readonly world: DaemonWorld,
    readonly host: SimHost,
  ) {
    this.wg = new SimWg(world.net, host, LISTEN_PORT, this.wgKeys.publicKey);
    this.backend = new FakeBackend({ device: this.wg });
  }

  get name(): string {
    return this.host.name;
  }

  get id(): string {
    return peerIdOf(this.identity.publicKey);
  }

  get running(): boolean {
    const s = this.daemon?.lifecycle;
    return s === "starting" || s === "member";
  }

  /** What netcheck finds from here now: NAT state is created, as real reflector requests would. */
  netcheck() {
    const server = this.world.registry.host.v4;
    const observations: ReflectorObservation[] = REFLECTOR_PORTS.flatMap((port, i) => {
      const observed = this.world.net.egress(this.host, PROBE_PORT, { address: server, port });
      return observed
        ? [{ reflector: i as 0 | 1, server: { address: server, port }, observed, rttMs: 10 }]
        : [];
    });
    return computeNetcheck({ probePort: PROBE_PORT, localAddresses: this.host.addresses(), observations });
  }

  private client(): RegistryClient {
    return new RegistryClient({
      url: "http://registry.sim:8470",
      network: NETWORK,
      identity: this.identity,
      clock: this.world.clock,
      transport: this.world.registry.transport(this.host.v4),
    });
  }

  /** `scope join`: the join request (what the daemon reads from join.json later). */
  async join(): Promise<void> {
    const nc = this.netcheck();
    const client = this.client();
    try {
      const r = await client.join(TOKEN, {
        name: this.host.name,
        wgPublicKey: this.wgKeys.publicKey,
        listenPort: LISTEN_PORT,
        probePort: PROBE_PORT,
        candidates: [],
        nat: natInfoOf(nc),
      });
      this.joined = {
        network: r.network,
        self: r.self,
        registryKey: r.registryKey,
        reflectorPorts: r.reflectorPorts,
      };
    } finally {
      client.close();
    }
  }

  /** Serves the daemon on a (fake) bus, as edge.ts does on the system bus; set before start(). */
  exportBus: DaemonDeps["exportBus"];
  /** The interface still being made when the daemon starts (`scope join --foreground`); set before start(). */
  backendBusy: Promise<unknown> | undefined;
  /** A real control socket at this path (default none); set before start(). */
  controlSocket: string | undefined;

  /** `scope daemon`: a fresh Daemon (the simulated WireGuard device keeps running across restarts). */
  start(): void {
    if (!this.joined) throw new Error(`${this.name}: join first`);
    const w = this.world;
    const config = EdgeConfig.parse({
      registry: { url: "http://registry.sim:8470" },
      network: { name: NETWORK },
      identity: { key_file: "/nonexistent/identity.key" },
      wireguard: { interface: "scope0", listen_port: LISTEN_PORT, private_key_file: "/nonexistent/wg.key" },
      daemon: { timers: w.profile, probe_port: PROBE_PORT },
      backend: { type: "fake" },
    });
    const daemon = new Daemon({
      config,
      identity: this.identity,
      wgKeys: this.wgKeys,
      join: this.joined,
      backend: this.backend,
      controlSocket: this.controlSocket,
      logger: captureLogger(this.logs, w.clock, this.name),
      clock: w.clock,
      random: () => 0.5,
      probeSocket: (port) => new SimProbeSocket(w.net, this.host, port),
      netcheck: (signal) => this.netcheckHook?.(signal) ?? Promise.resolve(this.netcheck()),
      localAddresses: () => this.host.addresses(),
      registryTransport: w.registry.transport(this.host.v4),
      ...(this.exportBus && { exportBus: this.exportBus }),
      ...(this.backendBusy && { backendBusy: this.backendBusy }),
    });
    this.daemon = daemon;
    this.exitCode = undefined;
    void daemon.done.then((code) => (this.exitCode = code));
    daemon.start().catch((e: Error) => this.logs.push(`start failed: ${e.message}`));
  }

  /** SIGTERM: the daemon stops, the tunnel stays. */
  async stop(): Promise<void> {
    await this.daemon?.shutdown(0, { remove: false });
  }

  /** `scope leave`. */
  async leave(): Promise<void> {
    await this.daemon?.leave();
    await this.daemon?.done;
  }

  status() {
    if (!this.daemon) throw new Error(`${this.name}: no daemon`);
    return this.daemon.status();
  }

  peer(name: string) {
    return this.status().peers.find((p) => p.name === name);
  }
}

/**
 * A started DaemonWorld for each test, handed to `use` before it starts and
 * stopped after the test. A test may stop it itself first, before
 * useFakeClock()'s leak check (call this after useFakeClock, so the check
 * runs first); stopping again is a no-op.
 */
export function useDaemonWorld(t: { readonly clock: FakeClock }, use: (w: DaemonWorld) => void): void {
  let world: DaemonWorld | undefined;
  beforeEach(async () => {
    world = new DaemonWorld(t.clock);
    use(world);
    await world.start();
  });
  afterEach(async () => world?.stop());
}

export class DaemonWorld {
  readonly net: SimNet;
  readonly registry: InProcessRegistry;
  readonly nodes: DaemonNode[] = [];
  private stopped = false;

  constructor(
    readonly clock: FakeClock,
    readonly profile: "fast" | "seed" = "fast",
    latencyMs = 5,
  ) {
    this.net = new SimNet(clock, latencyMs);
    this.registry = new InProcessRegistry(clock, this.net.addHost({ name: "registry", v6: false }));
  }

  async start(): Promise<void> {
    await this.registry.start();
  }

  add(spec: SimHostSpec): DaemonNode {
    const node = new DaemonNode(this, this.net.addHost(spec));
    this.nodes.push(node);
    return node;
  }

  /** Joins and starts each node, one after the other. */
  async up(...nodes: DaemonNode[]): Promise<void> {
    for (const n of nodes) {
      await n.join();
      n.start();
    }
    await this.settle();
  }

  /** Adds, joins and starts a node per spec, then runs until every pair is direct (or limitMs passed). */
  async mesh(specs: SimHostSpec[], limitMs = 10_000): Promise<{ nodes: DaemonNode[]; tookMs: number }> {
    const nodes = specs.map((spec) => this.add(spec));
    await this.up(...nodes);
    return { nodes, tookMs: await this.advanceUntil(() => this.allDirect(), limitMs) };
  }

  running(): DaemonNode[] {
    return this.nodes.filter((n) => n.running);
  }

  /** Every running daemon is a member and sees every other running one, each as check says. */
  all(check: (p: ReturnType<DaemonNode["status"]>["peers"][number]) => boolean): boolean {
    const up = this.running();
    return up.every((n) => {
      if (n.daemon?.lifecycle !== "member") return false;
      const peers = n.status().peers;
      return peers.length === up.length - 1 && peers.every(check);
    });
  }

  allDirect(): boolean {
    return this.all((p) => p.path === "direct");
  }

  /** Lets the I/O that is not on the clock (promises, koa, streams) run to rest. */
  async settle(): Promise<void> {
    for (let i = 0; i < 6; i++) await new Promise((r) => setImmediate(r));
  }

  /** Moves time by ms in steps, letting I/O run after each. */
  async advance(ms: number, stepMs = 5): Promise<void> {
    for (let done = 0; done < ms; done += stepMs) {
      this.clock.advance(Math.min(stepMs, ms - done));
      await this.settle();
    }
  }

  /** Advances until cond() holds or limitMs passed; returns the time it took. */
  async advanceUntil(cond: () => boolean, limitMs: number, stepMs = 5): Promise<number> {
    const start = this.clock.now();
    await this.settle();
    while (!cond() && this.clock.now() - start < limitMs) await this.advance(stepMs, stepMs);
    return this.clock.now() - start;
  }

  /** Logs of every node, for a failed assertion. */
  logs(): string {
    return this.nodes.map((n) => n.logs.slice(-40).join("\n")).join("\n\n");
  }

  /**
   * Stops every daemon (SIGTERM), the devices and the registry, then lets
   * what is in flight arrive. The clock is not cleared: a timer still pending
   * after this belongs to something that did not stop, and useFakeClock()
   * fails the test for it.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const n of this.nodes) await n.stop();
    for (const n of this.nodes) n.wg.stop();
    this.registry.dispose();
    await this.settle();
    this.clock.advance(this.net.latencyMs);
    await this.settle();
  }
}
