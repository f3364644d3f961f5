/**
 * startRegistry: everything with a socket or a file. Builds the store, the
 * hub and the app, then serves HTTP(S) on the listen address, the UDP
 * reflector on the same port number and on reflector_port2, and the admin
 * API on a root-only Unix socket. close() (also on SIGTERM/SIGINT) stops in
 * the reverse order and ends open event streams so clients reconnect.
 */
import { existsSync, mkdirSync, chmodSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { Socket as UdpSocket } from "node:dgram";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { systemClock } from "../core/clock.js";
import { ScopeError } from "../core/errors.js";
import { generateIdentity, identityFromSecret, type Identity } from "../crypto/keys.js";
import type { RegistryConfig } from "../config/schema.js";
import { createLogger, registerSecret } from "../log.js";
import { createMetricsApp, createRegistryApp } from "./app.js";
import { hashAdminToken, markAdminRequest } from "./auth.js";
import type { RegistryDeps, RegistryLogger } from "./deps.js";
import { EventHub } from "./events.js";
import { Limits, type LimitsConfig } from "./limits.js";
import { Metrics } from "./metrics.js";
import { boundAdminServer, listenAdminSocket, prepareAdminSocket } from "./admin-socket.js";
import { startReflector } from "./reflector-server.js";
import { openStore } from "./open-store.js";

export const DB_FILE = "registry.db";
export const KEY_FILE = "registry.key";
/** Events kept per network at most, besides the age limit (event_retention). */
export const EVENTS_PER_NETWORK = 100_000;
const PRUNE_EVENTS_MS = 10 * 60_000;
const PRUNE_NONCES_MS = 60_000;
/** Time allowed for in-flight requests at shutdown before connections are cut. */
const SHUTDOWN_GRACE_MS = 3000;

export interface RunningRegistry {
  /** TCP port actually bound (useful with port 0). */
  port: number;
  reflectorPorts: [number, number];
  /** Port of the /metrics listener; undefined when metrics_listen = off. */
  metricsPort: number | undefined;
  deps: RegistryDeps;
  /** Re-reads what can change under a running registry: the TLS certificate and key (SIGHUP). */
  reload(): void;
  close(): Promise<void>;
}

/** "[::]:8470", "127.0.0.1:8470", ":8470" (all addresses, dual-stack). */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host: host === "" ? "::" : host, port: Number(listen.slice(i + 1)) };
}

function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** The registry's Ed25519 key: made on first start, kept 0600 under the data dir. */
export function loadOrCreateKey(dataDir: string): Identity {
  const file = join(dataDir, KEY_FILE);
  if (existsSync(file)) {
    const raw = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
    if (raw.length !== 32) throw new ScopeError("config", `${file}: not a base64 32-byte key`);
    return identityFromSecret(raw);
  }
  const id = generateIdentity();
  writeFileSync(file, Buffer.from(id.secretKey).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  return id;
}

/** Reads the admin token (made on first start if the file is missing) and keeps only its hash. */
function loadAdminTokenHash(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, `scope_admin_${randomBytes(32).toString("base64url")}\n`, {
      mode: 0o600,
      flag: "wx",
    });
  }
  const token = readFileSync(file, "utf8").trim();
  if (token.length < 16)
    throw new ScopeError("config", `${file}: admin token too short (16 characters at least)`);
  registerSecret(token);
  return hashAdminToken(token);
}

/** No TLS 1.0/1.1: deprecated (RFC 8996), and nothing that speaks to a registry needs them. */
export const TLS_MIN_VERSION = "TLSv1.2";

function readTls(files: { cert: string; key: string }) {
  return {
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    minVersion: TLS_MIN_VERSION,
  } as const;
}

function listen(server: Server, opts: { host?: string; port?: number; path?: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(
      opts.path ? { path: opts.path } : { host: opts.host, port: opts.port, ipv6Only: false },
      () => {
        server.off("error", reject);
        resolve();
      },
    );
  });
}

export const limitsOf = (l: RegistryConfig["limits"]): LimitsConfig => ({
  joinPerAddress: l.join_per_address,
  joinPerPeer: l.join_per_peer,
  requestPerAddress: l.requests_per_address,
  requestPerPeer: l.requests_per_peer,
  messagePerPeer: l.messages_per_peer,
  reportPerPeer: l.reports_per_peer,
  streamsPerPeer: l.streams_per_peer,
});

export async function startRegistry(
  config: RegistryConfig,
  log: RegistryLogger = createLogger("registry"),
): Promise<RunningRegistry> {
  const c = config.registry;
  const { host, port } = parseListen(c.listen);
  ensurePrivateDir(c.data);
  // Owner and group: root, and the registry's group (scope-admin in the package, whose
  // unit runs with Group=scope-admin); nobody else (admin-socket.ts). Checked before any port is bound.
  prepareAdminSocket(c.admin_socket);
  const registryIdentity = loadOrCreateKey(c.data);
  const store = await openStore(config, join(c.data, DB_FILE), log);
  const metrics = new Metrics();
  const hub = new EventHub(() => metrics.eventsEmitted++);
  store.onEvent((e) => hub.publish(e));

  const tlsFiles = c.tls_cert && c.tls_key ? { cert: c.tls_cert, key: c.tls_key } : undefined;
  const tls = tlsFiles && readTls(tlsFiles);
  const deps: RegistryDeps = {
    store,
    hub,
    metrics,
    clock: systemClock,
    log,
    registryIdentity,
    reflectorPorts: [port, c.reflector_port2 ?? port + 1],
    adminTokenHash: loadAdminTokenHash(c.admin_token_file),
    limits: new Limits(limitsOf(config.limits)),
  };
  const app = createRegistryApp(deps);
  const handler = app.callback();
  const server: Server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  /** SIGHUP: new connections get the renewed certificate; open ones (event streams) keep theirs. */
  const reload = () => {
    if (!tlsFiles) return;
    try {
      (server as HttpsServer).setSecureContext(readTls(tlsFiles));
      log.info("TLS certificate reloaded", { cert: tlsFiles.cert });
    } catch (e) {
      // A half-written renewal must not take the registry down: keep serving the old one.
      log.error("TLS reload failed; still serving the previous certificate", { err: (e as Error).message });
    }
  };
  // Slow-loris bounds; event streams are unaffected (their request is complete at once).
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;
  // Past this, node closes new connections at once: the bound on sockets (and file descriptors).
  server.maxConnections = config.limits.max_connections;
  await listen(server, { host, port });
  const bound = (server.address() as { port: number }).port;
  deps.reflectorPorts = [bound, c.reflector_port2 ?? bound + 1];

  const metricsServer =
    c.metrics_listen === "off" ? undefined : createHttpServer(createMetricsApp(deps).callback());
  if (metricsServer) await listen(metricsServer, parseListen(c.metrics_listen));
  const metricsBound = metricsServer && (metricsServer.address() as { port: number }).port;

  const udp: UdpSocket[] = [];
  for (const p of deps.reflectorPorts)
    udp.push(await startReflector({ host, port: p, identity: registryIdentity, metrics, log }));

  const admin = createHttpServer((req, res) => {
    markAdminRequest(req);
    handler(req, res);
  });
  boundAdminServer(admin);
  await listenAdminSocket(admin, c.admin_socket);

  const retention = { maxAgeMs: c.event_retention * 1000, maxPerNetwork: EVENTS_PER_NETWORK };
  const prune = async () => {
    const dropped = await store.pruneEvents(retention, systemClock.now());
    if (dropped) log.info("old events dropped", { dropped });
  };
  await prune();
  const timers = [
    setInterval(
      () => void prune().catch((e: Error) => log.warn("event pruning failed", { err: e.message })),
      PRUNE_EVENTS_MS,
    ),
    setInterval(() => void store.pruneNonces(systemClock.now()).catch(() => {}), PRUNE_NONCES_MS),
  ];
  for (const t of timers) t.unref();

  log.info("registry listening", {
    listen: `${host.includes(":") ? `[${host}]` : host}:${bound}`,
    tls: Boolean(tls),
    reflector: deps.reflectorPorts.join(","),
    admin_socket: c.admin_socket,
    metrics: metricsServer ? `${c.metrics_listen.replace(/:\d+$/, "")}:${metricsBound}` : "off",
    data: c.data,
  });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const t of timers) clearInterval(t);
      hub.close();
      const servers = [server, admin, ...(metricsServer ? [metricsServer] : [])];
      const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      server.closeIdleConnections();
      const cut = setTimeout(() => servers.forEach((s) => s.closeAllConnections()), SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(cut);
      await Promise.all(udp.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await store.close();
      if (existsSync(c.admin_socket)) unlinkSync(c.admin_socket);
      log.info("registry stopped");
    })());
  return { port: bound, reflectorPorts: deps.reflectorPorts, metricsPort: metricsBound, deps, reload, close };
}

/** Runs until SIGTERM/SIGINT, then shuts down gracefully; SIGHUP reloads the TLS certificate. */
export async function runRegistry(
  config: RegistryConfig,
  log: RegistryLogger = createLogger("registry"),
): Promise<void> {
  const running = await startRegistry(config, log);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info("shutting down", { signal });
      void running.close().then(resolve);
    };
    const hup = () => running.reload();
    process.on("SIGHUP", hup);
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}
