// A Scope mesh inside a lab world: one registry on a public host, edge
// daemons on chosen hosts, and typed reads of what they report. Shared by the
// lab tests, the demo and the join benchmark, so all three drive the real
// `scope` binary the same way an administrator would.
//
// Every file (registry data, edge configs, keys, control sockets, logs) lives
// under lab.dir, and every process is spawned inside a lab namespace, so the
// lab's own cleanup (cleanup.ts, also on SIGINT and crashes) removes it all.

import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  openSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import { AdminClient } from "../../src/client/admin-client.js";
import { controlRequest } from "../../src/daemon/control.js";
import type { Peer } from "../../src/core/protocol.js";
import { Lab } from "./lab.js";
import { LAB_ENV, run } from "./netns.js";
import { shiftedPort, NAT_KINDS } from "./nat.js";
import { waitFor } from "./wait.js";
import type { World } from "./world.js";
import { allSettled, type ScopeStatus } from "./status.js";

export type { PeerStatus, ScopeStatus } from "./status.js";
export type Timers = "fast" | "seed";

/** The compiled CLI, run with the same node as the tests. */
export const SCOPE_CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
export const REGISTRY_PORT = 8470;
const CIDR = "10.88.0.0/16";

// Daemon logs must keep the plain "ISO level message" shape that logErrors()
// parses, even when the test runner itself runs under systemd.
/** Extra node options for every daemon, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to see where a join's CPU goes. */
const DAEMON_NODE_ARGS = (process.env["SCOPE_LAB_NODE_ARGS"] ?? "").split(" ").filter((a) => a !== "");
/** A daemon writing a CPU profile at exit (SCOPE_LAB_NODE_ARGS=--cpu-prof) needs far longer than 5 s on a busy machine. */
const PROFILING = DAEMON_NODE_ARGS.some((a) => a.startsWith("--cpu-prof") || a.startsWith("--heap-prof"));
const SIGTERM_WINDOW_MS = PROFILING ? 60_000 : 5_000;
const DAEMON_ENV: NodeJS.ProcessEnv = { ...LAB_ENV, JOURNAL_STREAM: "", INVOCATION_ID: "" };
delete DAEMON_ENV["JOURNAL_STREAM"];
delete DAEMON_ENV["INVOCATION_ID"];

export interface EdgeOptions {
  readonly timers?: Timers;
  /** Peer name in the registry; default the host name. Must be new for every fresh identity. */
  readonly name?: string;
  readonly network?: string;
  /** `[psk] mode = rotate` with this interval ("5s"); absent: PSKs off. */
  readonly pskInterval?: string;
  /** Join with the network's hub token, and the host's public address as its fixed `--endpoint`. */
  readonly role?: "hub";
  /** The registry URL(s) to join with; default every registry of the scenario, the first first. */
  readonly registryUrl?: string;
}

/** More than one registry: replicas on one store (issue 15). */
export interface RegistryOptions {
  /** Public hosts that each run another registry, listed after the first in every edge's `url`. */
  readonly replicas?: readonly string[];
  /** registry.conf text for every registry, e.g. a `[store]` section naming a shared PostgreSQL. */
  readonly store?: string;
}

/** One edge: a host running `scope daemon` with its own files, interface and control socket. */
export interface Edge {
  readonly host: string;
  readonly name: string;
  readonly network: string;
  /** WireGuard interface; distinct per host because wireguard-go's UAPI sockets are shared across namespaces. */
  readonly iface: string;
  readonly listenPort: number;
  readonly probePort: number;
  readonly dir: string;
  readonly config: string;
  readonly controlSocket: string;
  readonly log: string;
  timers: Timers;
  daemon: ChildProcess | undefined;
}

export class Scenario {
  readonly edges = new Map<string, Edge>();
  /** The running registry process of each registry host. */
  private readonly registries = new Map<string, ChildProcess>();
  private readonly registryHosts: readonly string[];
  private readonly regDir: string;
  private readonly tokens = new Map<string, string>();
  private readonly hubTokens = new Map<string, string>();
  private generation = 0;
  private readonly admin: AdminClient;

  /** Daemon log level: debug for diagnosis; the join benchmark runs them as shipped (info). */
  daemonLogLevel: "debug" | "info" = "debug";

  private constructor(
    readonly lab: Lab,
    readonly registryHost: string,
    private readonly registryOpts: RegistryOptions = {},
  ) {
    this.registryHosts = [registryHost, ...(registryOpts.replicas ?? [])];
    this.regDir = join(lab.dir, "registry");
    // 0750: the admin socket's directory must not let others in (src/registry/admin-socket.ts).
    for (const h of this.registryHosts)
      mkdirSync(join(this.regDirOf(h), "data"), { recursive: true, mode: 0o750 });
    this.admin = new AdminClient({ socketPath: this.adminSocket });
  }

  /** Builds the world, starts the registry on `registryHost` (a public host) and creates `networks`. */
  static async start(
    world: World,
    registryHost: string,
    networks: readonly string[] = ["lab"],
    registryOpts: RegistryOptions = {},
  ): Promise<Scenario> {
    const lab = await Lab.create(world);
    const sc = new Scenario(lab, registryHost, registryOpts);
    try {
      // One after the other: a replica takes the first one's registry.key.
      for (const h of sc.registryHosts) await sc.startRegistry(h);
      for (const net of networks) await sc.createNetwork(net);
      return sc;
    } catch (e) {
      await sc.teardown();
      throw e;
    }
  }

  /** What edges join with: the first registry's URL, then each replica's. */
  get registryUrl(): string {
    return this.registryHosts.map((h) => this.urlOf(h)).join(", ");
  }

  urlOf(registryHost: string): string {
    return `http://${this.lab.publicV4(registryHost)}:${REGISTRY_PORT}`;
  }

  /** The first registry's process. */
  get registry(): ChildProcess | undefined {
    return this.registries.get(this.registryHost);
  }

  /** The registry's SQLite file, for tests that check what it holds (sqlite3 on the real file). */
  get registryDb(): string {
    return join(this.regDir, "data", "registry.db");
  }

  get adminSocket(): string {
    return join(this.regDir, "admin.sock");
  }

  /** (Re)starts a registry on its old data directory and waits until it answers /healthz. */
  async startRegistry(host = this.registryHost): Promise<void> {
    const dir = this.regDirOf(host);
    const config = join(dir, "registry.conf");
    const data = join(dir, "data");
    // Replicas sign reflector replies with the same key (docs/registry.md): edges pinned the first's.
    const key = join(this.regDir, "data", "registry.key");
    if (host !== this.registryHost && existsSync(key)) cpSync(key, join(data, "registry.key"));
    writeFileSync(
      config,
      `[registry]\nlisten = [::]:${REGISTRY_PORT}\ndata = ${data}\nadmin_socket = ${join(dir, "admin.sock")}\n` +
        (this.registryOpts.store ?? ""),
    );
    const child = this.spawnLogged(host, ["registry", "--config", config], join(dir, "registry.log"));
    this.registries.set(host, child);
    // Asked from inside the lab: the test process itself is not on the fake internet.
    const check = `fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`;
    await waitFor(
      async () => {
        if (exited(child)) throw new Error(`registry exited; see ${join(dir, "registry.log")}`);
        const url = `${this.urlOf(host)}/healthz`;
        return (
          (await this.lab.exec(host, [process.execPath, "-e", check, url], { allowFail: true })).code === 0
        );
      },
      { timeoutMs: 15_000, intervalMs: 100, what: "the registry to answer /healthz" },
    );
  }

  /** SIGKILLs a registry and waits until it is gone. */
  async killRegistry(host = this.registryHost): Promise<void> {
    await killHard(this.registries.get(host));
    this.registries.delete(host);
  }

  /** The first registry's files under regDir, as before replicas; a replica's in regDir/HOST. */
  private regDirOf(host: string): string {
    return host === this.registryHost ? this.regDir : join(this.regDir, host);
  }

  /** Creates a network and a join token for it, over the admin socket (the test runs on the registry's machine). */
  async createNetwork(net: string, topology: "mesh" | "tree" = "mesh"): Promise<void> {
    await this.admin.createNetwork({ name: net, cidr: CIDR, topology });
    const { token } = await this.admin.createToken(net, { uses: 10_000 });
    this.tokens.set(net, token);
    const hub = await this.admin.createToken(net, { uses: 100, role: "hub" });
    this.hubTokens.set(net, hub.token);
  }

  /** The join token of a network, for tests that look for it where it must not be. */
  tokenOf(net: string): string {
    return this.tokens.get(net) ?? "";
  }

  /** The registry's peer records of a network (admin view). */
  registryPeers(net = "lab"): Promise<Peer[]> {
    return this.admin.listPeers(net);
  }

  /**
   * Joins `host` with a fresh identity (`scope join --no-start`), points the
   * written config at per-host paths, and starts the daemon. Resolves once the
   * daemon's control socket answers. Returns the edge.
   */
  async join(host: string, opts: EdgeOptions = {}): Promise<Edge> {
    const network = opts.network ?? "lab";
    const token = (opts.role === "hub" ? this.hubTokens : this.tokens).get(network);
    if (token === undefined) throw new Error(`no network ${network} in this scenario`);
    const plan = this.lab.plan.hosts.get(host);
    if (plan === undefined) throw new Error(`no host ${host}`);
    // A fresh directory per join: a re-join is a new identity, as after `scope leave`.
    const dir = join(this.lab.dir, "edges", `${host}-${++this.generation}`);
    mkdirSync(dir, { recursive: true });
    const { listenPort, probePort } = this.ports(host);
    const edge: Edge = {
      host,
      name: opts.name ?? host,
      network,
      iface: `sl-${host}`,
      listenPort,
      probePort,
      dir,
      config: join(dir, `${network}.conf`),
      // Where `scope join` puts it for a non-default state dir.
      controlSocket: join(dir, "state", network, "control.sock"),
      log: join(dir, "daemon.log"),
      timers: opts.timers ?? "fast",
      daemon: undefined,
    };
    // `scope join --foreground`: the join process becomes the daemon, the
    // quickest path a user has (no second node start-up). The token goes
    // through stdin, as an administrator should pass it (argv is world-readable).
    // The written config already has what the lab needs (probe port
    // listen+1, control socket under the state dir); restarts use it.
    const fd = openSync(edge.log, "a");
    let child: ChildProcess;
    try {
      child = this.lab.spawn(
        host,
        [
          process.execPath,
          ...DAEMON_NODE_ARGS,
          SCOPE_CLI,
          "join",
          opts.registryUrl ?? this.registryUrl,
          // The lab's registry speaks plain http on its fake internet (the registry tier tests TLS).
          "--insecure",
          "--network",
          network,
          "--token-file",
          "-",
          "--name",
          edge.name,
          "--backend",
          "wg",
          "--listen-port",
          String(listenPort),
          "--interface",
          edge.iface,
          "--timers",
          edge.timers,
          ...(opts.pskInterval ? ["--psk", "rotate", "--psk-interval", opts.pskInterval] : []),
          "--config-dir",
          dir,
          "--state-dir",
          join(dir, "state"),
          "--log-level",
          this.daemonLogLevel,
          ...(opts.role === "hub" ? ["--endpoint", `${this.lab.publicV4(host)}:${listenPort}`] : []),
          "--foreground",
        ],
        { stdio: ["pipe", fd, fd], env: DAEMON_ENV },
      );
    } finally {
      closeSync(fd); // the child keeps its own copy
    }
    child.stdin?.end(token);
    edge.daemon = child;
    this.edges.set(host, edge);
    await waitFor(
      () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(
            `${host}: scope join exited (${child.exitCode ?? child.signalCode}); see ${edge.log}`,
          );
        return this.status(host).catch(() => undefined);
      },
      // 40 joins at once on a loaded 2-core host took up to 31 s to a control socket (node start-ups).
      { timeoutMs: 90_000, intervalMs: 50, what: `${host}'s control socket` },
    );
    // Later restarts (`scope daemon --config`) read the lab's keys from the file.
    this.writeLabKeys(edge);
    return edge;
  }

  /** Starts (or restarts) the daemon of an edge, optionally with another timer profile. */
  async startDaemon(edge: Edge, timers: Timers = edge.timers): Promise<void> {
    if (timers !== edge.timers) {
      edge.timers = timers;
      this.writeLabKeys(edge);
    }
    edge.daemon = this.spawnLogged(edge.host, ["daemon", "--config", edge.config], edge.log);
    await waitFor(() => this.status(edge.host), {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: `${edge.host}'s control socket`,
    });
  }

  /** Stops an edge's daemon: SIGKILL when `hard`, else SIGTERM (the daemon leaves its tunnel up). */
  async stopDaemon(host: string, hard = false): Promise<void> {
    const edge = this.edge(host);
    if (hard) await killHard(edge.daemon);
    else await stopGently(edge.daemon);
    edge.daemon = undefined;
  }

  /** `scope leave` for the edge; resolves when its daemon has exited. The edge is forgotten. */
  async leave(host: string): Promise<void> {
    const edge = this.edge(host);
    await this.scope(host, ["leave", "--config", edge.config]);
    // leave ends the daemon; give it the time a clean shutdown needs, then make sure.
    await waitFor(
      () => edge.daemon === undefined || edge.daemon.exitCode !== null || edge.daemon.signalCode !== null,
      {
        timeoutMs: SIGTERM_WINDOW_MS,
        what: `${host}'s daemon to exit after leave`,
      },
    ).catch(() => stopGently(edge.daemon));
    this.edges.delete(host);
  }

  /** The WireGuard and probe ports a host's edge uses: fixed per host, so a test can watch them before the join. */
  ports(host: string): { listenPort: number; probePort: number } {
    const plan = this.lab.plan.hosts.get(host);
    if (plan === undefined) throw new Error(`no host ${host}`);
    const listenPort = 51820 + 10 * plan.index;
    return { listenPort, probePort: listenPort + 1 };
  }

  /** Joins several hosts at once, as a fleet being brought up. */
  joinAll(hosts: readonly string[], opts: Omit<EdgeOptions, "name"> = {}): Promise<Edge[]> {
    return Promise.all(hosts.map((h) => this.join(h, opts)));
  }

  /** Names of the joined edges of a network other than `host`. */
  peersOf(host: string): string[] {
    const net = this.edge(host).network;
    return [...this.edges.values()].filter((e) => e.host !== host && e.network === net).map((e) => e.name);
  }

  /**
   * Polls `host`'s status until `pred` holds; resolves with that status.
   * Every 50 ms by default; large meshes poll less often so that the
   * polling itself does not compete with the daemons for the CPUs.
   */
  waitStatus(
    host: string,
    pred: (s: ScopeStatus) => boolean,
    timeoutMs: number,
    what: string,
    intervalMs = 50,
  ): Promise<ScopeStatus> {
    return waitFor(
      async () => {
        const s = await this.status(host);
        return pred(s) ? s : undefined;
      },
      { timeoutMs, intervalMs, what: `${host}: ${what}` },
    );
  }

  /** Waits until every listed edge sees every other edge of its network settled; returns the elapsed ms. */
  async waitConverged(hosts: readonly string[], timeoutMs: number, intervalMs = 50): Promise<number> {
    const t0 = Date.now();
    await Promise.all(
      hosts.map((h) =>
        this.waitStatus(h, (s) => allSettled(s, this.peersOf(h)), timeoutMs, "all peers settled", intervalMs),
      ),
    );
    return Date.now() - t0;
  }

  edge(host: string): Edge {
    const e = this.edges.get(host);
    if (e === undefined) throw new Error(`${host} has not joined`);
    return e;
  }

  /**
   * The edge's status, the object `scope status --json` prints, asked straight
   * from the daemon's control socket: a Unix socket is reachable from the
   * test process whatever namespace the daemon runs in, and skipping a node
   * start per poll keeps 50 ms polling honest on a 2-core machine.
   */
  async status(host: string): Promise<ScopeStatus> {
    const r = await controlRequest(this.edge(host).controlSocket, { cmd: "status" }, 5_000);
    return r["status"] as ScopeStatus;
  }

  /** `scope status --json` through the CLI inside the host, to check the command itself. */
  async statusCli(host: string): Promise<ScopeStatus> {
    const e = this.edge(host);
    return JSON.parse(await this.scope(host, ["status", "--config", e.config, "--json"])) as ScopeStatus;
  }

  /** Runs `scope ARGS` in a host (or the root namespace) and returns stdout. */
  async scope(host: string | undefined, args: readonly string[], input?: string): Promise<string> {
    const argv = [process.execPath, SCOPE_CLI, ...args];
    const opts = { timeoutMs: 30_000, ...(input === undefined ? {} : { input }) };
    const r = host === undefined ? await run(argv, opts) : await this.lab.exec(host, argv, opts);
    return r.stdout;
  }

  /** The peer's NAT-public IPv4 endpoint of its WireGuard port, as a correct peer must see it. */
  publicWgEndpoint(host: string): string {
    const e = this.edge(host);
    const router = this.lab.routerOf(host);
    const port =
      router !== undefined && !NAT_KINDS[router.spec.nat].preservesPort
        ? shiftedPort(e.listenPort)
        : e.listenPort;
    return `${this.lab.publicV4(host)}:${port}`;
  }

  /**
   * Removes everything. With SCOPE_LAB_LOGS=DIR set, the registry and daemon
   * logs are first copied to DIR/<time>/ so a failed run can be diagnosed.
   */
  async teardown(): Promise<void> {
    const keep = process.env["SCOPE_LAB_LOGS"];
    if (keep !== undefined && keep !== "") {
      const to = join(keep, new Date().toISOString().replace(/[:.]/g, "-"));
      mkdirSync(to, { recursive: true });
      for (const h of this.registryHosts) {
        const log = join(this.regDirOf(h), "registry.log");
        if (existsSync(log)) cpSync(log, join(to, `registry-${h}.log`), { force: true });
      }
      const edges = join(this.lab.dir, "edges");
      for (const d of existsSync(edges) ? readdirSync(edges, { withFileTypes: true }) : []) {
        const log = join(this.lab.dir, "edges", d.name, "daemon.log");
        if (existsSync(log)) cpSync(log, join(to, `${d.name}.log`));
      }
    }
    // The lab's sweep gives a process 2 s before SIGKILL: too short to write a profile.
    if (PROFILING) await Promise.all([...this.edges.values()].map((e) => stopGently(e.daemon)));
    await this.lab.teardown();
  }

  /** Sets the lab-specific daemon keys of an edge config: its own control socket, timers, probe port, log level. */
  private writeLabKeys(edge: Edge): void {
    const text = readFileSync(edge.config, "utf8");
    writeFileSync(
      edge.config,
      setIniKeys(text, {
        daemon: {
          timers: edge.timers,
          probe_port: String(edge.probePort),
          control_socket: edge.controlSocket,
          log_level: this.daemonLogLevel,
        },
      }),
    );
  }

  private spawnLogged(host: string, args: readonly string[], log: string): ChildProcess {
    const fd = openSync(log, "a");
    try {
      return this.lab.spawn(host, [process.execPath, ...DAEMON_NODE_ARGS, SCOPE_CLI, ...args], {
        stdio: ["ignore", fd, fd],
        env: DAEMON_ENV,
      });
    } finally {
      closeSync(fd); // the child keeps its own copy
    }
  }
}

/** Sets keys in INI text, adding missing sections and keys, keeping everything else. */
export function setIniKeys(
  text: string,
  values: Readonly<Record<string, Readonly<Record<string, string>>>>,
): string {
  const lines = text.split("\n");
  for (const [section, kv] of Object.entries(values)) {
    let start = lines.findIndex((l) => l.trim() === `[${section}]`);
    if (start < 0) {
      if (lines.length > 0 && lines[lines.length - 1] !== "") lines.push("");
      lines.push(`[${section}]`);
      start = lines.length - 1;
    }
    for (const [key, value] of Object.entries(kv)) {
      let end = lines.findIndex((l, i) => i > start && /^\s*\[/.test(l));
      if (end < 0) end = lines.length;
      const at = lines.findIndex((l, i) => i > start && i < end && new RegExp(`^\\s*${key}\\s*=`).test(l));
      if (at >= 0) lines[at] = `${key} = ${value}`;
      else lines.splice(start + 1, 0, `${key} = ${value}`);
    }
  }
  return lines.join("\n");
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

async function killHard(p: ChildProcess | undefined): Promise<void> {
  if (p === undefined || exited(p)) return;
  p.kill("SIGKILL");
  await waitFor(() => exited(p), { timeoutMs: 5_000, what: `pid ${p.pid} to die` });
}

async function stopGently(p: ChildProcess | undefined): Promise<void> {
  if (p === undefined || exited(p)) return;
  p.kill("SIGTERM");
  await waitFor(() => exited(p), {
    timeoutMs: SIGTERM_WINDOW_MS,
    what: `pid ${p.pid} to exit on SIGTERM`,
  }).catch(() => killHard(p));
}
