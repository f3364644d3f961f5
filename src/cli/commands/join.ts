import { spawn } from "node:child_process";
import { existsSync, openSync } from "node:fs";
import { readFile, mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseEdgeConfig } from "../../config/load.js";
import { ScopeError } from "../../core/errors.js";
import { formatEndpoint, parseEndpoint } from "../../core/ip.js";
import { composeCandidates } from "../../core/netcheck.js";
import { NetworkName, PeerName } from "../../core/protocol.js";
import { isUnreachable } from "../../client/http.js";
import { RegistryClient } from "../../client/registry-client.js";
import { registryUrls } from "../../client/registry-list.js";
import { loadTrust, requireSecureUrl } from "../../client/tls.js";
import {
  generateIdentity,
  generateWgKeyPair,
  shortKey,
  type Identity,
  type WgKeyPair,
} from "../../crypto/keys.js";
import {
  DEFAULT_CONFIG_DIR,
  DEFAULT_STATE_ROOT,
  configPath,
  identityFileText,
  loadIdentity,
  loadWgKey,
  stateDirOf,
  writeFileAtomic,
  writeJoinState,
  writePrivateFile,
} from "../../daemon/files.js";
import { localAddresses } from "../../daemon/netcheck-runner.js";
import { registerSecret } from "../../log.js";
import type { Command, CommandIO } from "../command.js";
import { CHECKS } from "../flags.js";
import { hostname } from "node:os";

const TOKEN_HINT = "a token on argv is visible to every user in ps(1); use --token-file F, or - for stdin";

export const command: Command = {
  name: "join",
  summary: "Join this host to a network: create keys, write /etc/scope/NET.conf, start the daemon",
  usage:
    "join REGISTRY_URL --network NET --token-file F|- [--name N] [--backend auto|wg|networkmanager|networkd] [--listen-port P] [--interface IF] [--timers fast|seed] [--endpoint ADDR:PORT] [--psk off|rotate] [--psk-interval 2m] [--config-dir DIR] [--state-dir DIR] [--ca-file PEM] [--pin sha256/B64] [--insecure] [--no-start | --foreground]",
  help: [
    "Keys are created once under STATE_DIR/NET (identity.key, wg.key; 0600, directory 0700)",
    "and reused when joining again. The token is read from --token-file F, or from",
    "stdin with --token-file -; never from argv, which every user sees in ps(1).",
    "Without --no-start the daemon is started in the background, or, when systemd",
    "runs, the 'systemctl enable --now scope@NET' line to run is printed.",
    "With --foreground this process becomes the daemon (as 'scope daemon --config",
    "CONFIG' would), without a second start-up: the quickest way into the mesh.",
    "REGISTRY_URL may list replicas, 'https://a:8470,https://b:8470' (the join uses the first",
    "that answers; the daemon fails over in order). Each must be https:// (plain http:// only",
    "to a loopback address, or with",
    "--insecure). --ca-file names the CA that signed the registry's certificate (kept as",
    "ca_file in NET.conf); --pin adds the SHA-256 of its public key (docs/hardening.md).",
    "--endpoint ADDR:PORT publishes a fixed public WireGuard endpoint (a hub's; written",
    "to the config as [wireguard] endpoint). Whether the host is a hub is the token's",
    "or the admin's decision (scope token create --role hub), never this host's.",
  ].join("\n"),
  options: {
    network: { type: "string", short: "n" },
    "token-file": { type: "string" },
    name: { type: "string" },
    backend: { type: "string", default: "auto" },
    "listen-port": { type: "string", default: "51820" },
    interface: { type: "string", default: "scope0" },
    timers: { type: "string", default: "fast" },
    psk: { type: "string" },
    "psk-interval": { type: "string" },
    endpoint: { type: "string" },
    "config-dir": { type: "string", default: DEFAULT_CONFIG_DIR },
    "state-dir": { type: "string", default: DEFAULT_STATE_ROOT },
    "no-start": { type: "boolean" },
    foreground: { type: "boolean" },
    "ca-file": { type: "string" },
    pin: { type: "string" },
    insecure: { type: "boolean" },
  },
  checks: {
    network: CHECKS.network,
    "token-file": CHECKS.secretFile,
    name: CHECKS.peerName,
    backend: CHECKS.backend,
    "listen-port": CHECKS.listenPort,
    interface: CHECKS.iface,
    timers: CHECKS.timers,
    "config-dir": CHECKS.path,
    "state-dir": CHECKS.path,
    "ca-file": CHECKS.file,
    pin: CHECKS.pin,
    endpoint: CHECKS.endpoint,
    psk: CHECKS.pskMode,
    "psk-interval": CHECKS.pskInterval,
  },
  refused: { token: TOKEN_HINT },
  positionals: { min: 1, max: 1, names: ["REGISTRY_URL"], checks: [CHECKS.urls] },
  async run(args, io) {
    const v = args.values as Record<string, string | boolean | undefined>;
    const urls = registryUrls(args.positionals[0] ?? "");
    if (urls.length === 0 || urls.some((u) => !/^https?:\/\/./.test(u)))
      throw new ScopeError("usage", "REGISTRY_URL must be http(s)://HOST[:PORT]");
    for (const u of urls) requireSecureUrl(u, "REGISTRY_URL", v.insecure === true);
    const url = urls.join(", ");
    const caFile = typeof v["ca-file"] === "string" ? resolve(v["ca-file"]) : undefined;
    const pin = typeof v.pin === "string" ? v.pin : undefined;
    const tls = loadTrust({ caFile, pin }); // a bad file or pin: exit 2 (config), naming it
    const network = check(NetworkName, v.network, "--network NET");
    const name = check(PeerName, v.name ?? hostname().split(".")[0], "--name");
    const listenPort = Number(v["listen-port"]);
    if (!Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65534)
      throw new ScopeError("usage", "--listen-port must be 1-65534");
    if (v.timers !== "fast" && v.timers !== "seed")
      throw new ScopeError("usage", "--timers must be fast or seed");
    const endpoint = typeof v.endpoint === "string" ? parseEndpoint(v.endpoint) : undefined;
    if (v.endpoint !== undefined && !endpoint)
      throw new ScopeError("usage", "--endpoint must be ADDR:PORT (an IP address; [v6]:PORT for IPv6)");
    if (v["no-start"] === true && v.foreground === true)
      throw new ScopeError("usage", "--no-start and --foreground exclude each other");
    // Loaded while the join request is on the wire, not after it.
    const daemonModule = v.foreground === true ? import("./daemon.js") : undefined;
    const token = await readToken(v, io);
    registerSecret(token);

    const stateDir = stateDirOf(String(v["state-dir"]), network);
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const iface = String(v.interface);
    const probePort = listenPort + 1;
    const confPath = configPath(String(v["config-dir"]), network);
    const confText = edgeConfigText({
      url,
      network,
      stateDir,
      iface,
      listenPort,
      timers: String(v.timers),
      ...(v.psk !== undefined ? { psk: String(v.psk) } : {}),
      ...(v["psk-interval"] !== undefined ? { pskInterval: String(v["psk-interval"]) } : {}),
      backend: String(v.backend),
      caFile,
      pin,
      ...(endpoint ? { endpoint: formatEndpoint(endpoint) } : {}),
      defaultState: stateDir === stateDirOf(DEFAULT_STATE_ROOT, network),
    });
    const identityKey = ensureKey(
      `${stateDir}/identity.key`,
      () => loadIdentity(`${stateDir}/identity.key`),
      async (p) => {
        const id = generateIdentity();
        await writePrivateFile(p, identityFileText(id));
        return id;
      },
    );
    const wgKey = ensureKey(
      `${stateDir}/wg.key`,
      () => loadWgKey(`${stateDir}/wg.key`),
      async (p) => {
        const k = generateWgKeyPair();
        registerSecret(k.privateKey);
        await writePrivateFile(p, k.privateKey + "\n");
        return k;
      },
    );

    // The interface is made while the keys are written and the join request is on the wire
    // (daemon/edge.ts); it needs the WireGuard key only for its last step.
    // A failure here is the daemon's to report, with its own retries.
    // The daemon in this process runs on the config being written, parsed once here.
    const config = v.foreground === true ? parseEdgeConfig(confPath, confText) : undefined;
    const prepared = config
      ? daemonModule
          ?.then((m) =>
            m.prepareInterface(
              config,
              wgKey.then((k) => k.privateKey),
            ),
          )
          .catch(() => undefined)
      : undefined;
    // Not joined after all: an interface made for it goes again.
    const abandon = async (e: unknown): Promise<never> => {
      const p = await prepared;
      if (p && (await p.created)) await p.backend.close({ remove: true }).catch(() => undefined);
      throw e;
    };
    const [identity, wg] = await Promise.all([identityKey, wgKey]).catch(abandon);
    const client = new RegistryClient({ url, network, identity, tls });
    const response = await joinPatiently(io, () =>
      client.join(token, {
        name,
        wgPublicKey: wg.publicKey,
        listenPort,
        probePort,
        candidates: composeCandidates({
          probePort,
          localAddresses: localAddresses(iface),
          netcheck: undefined,
          reported: [],
          configured: endpoint ? [endpoint] : [],
        }),
        // The daemon runs netcheck against the reflector (whose key the join answer brings) and updates this at once.
        nat: { mapping: "unknown", ipv6: false },
      }),
    ).catch((e: unknown) => {
      client.close();
      return abandon(e);
    });
    const joinState = {
      network: response.network,
      self: response.self,
      registryKey: response.registryKey,
      reflectorPorts: response.reflectorPorts,
    };
    const written = Promise.all([
      writeJoinState(stateDir, joinState),
      mkdir(String(v["config-dir"]), { recursive: true, mode: 0o755 }).then(() =>
        writeFileAtomic(confPath, confText, 0o640),
      ),
    ]).then(() =>
      io.stdout.write(
        `joined ${network} as ${response.self.name} (${response.self.address}), peer id ${response.self.id}, WireGuard key ${shortKey(wg.publicKey)}\n` +
          `config: ${confPath}\n`,
      ),
    );
    if (config) {
      // Hand over to the daemon in this process: no second node start-up, and
      // no reading back what is being written (it serves only once written).
      written.catch(() => undefined); // the daemon's start-up reports it
      const { runDaemon } = await (daemonModule ?? import("./daemon.js"));
      return runDaemon(config, args.values["log-level"] === undefined, await prepared, {
        identity,
        wgKeys: wg,
        join: joinState,
        written,
      });
    }
    await written;
    return start(io, network, confPath, stateDir, v["no-start"] === true);
  },
};

function check<T>(
  schema: { safeParse(x: unknown): { success: true; data: T } | { success: false } },
  x: unknown,
  what: string,
): T {
  const r = schema.safeParse(x);
  if (!r.success) throw new ScopeError("usage", `${what}: missing or invalid`);
  return r.data;
}

/** How long `scope join` keeps sending a join that no registry answered. */
export const JOIN_PATIENCE_MS = 90_000;

/**
 * Sends the join again while no registry answers (refused, reset, no answer
 * in time: a busy or restarting registry), for up to JOIN_PATIENCE_MS. Safe:
 * a join from the same identity key is a no-op in the store (same id, same
 * address, no token use), so an attempt the registry did take and a retry of
 * it join once. An answer with an error (bad token, name taken) ends it at once.
 */
export async function joinPatiently<T>(
  io: Pick<CommandIO, "stderr">,
  send: () => Promise<T>,
  patienceMs = JOIN_PATIENCE_MS,
  // A plain, referenced timer, not sleep(systemClock): its timers are unref'd, and a join
  // waiting on nothing else would let the process end mid-wait with exit code 0.
  sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  now = Date.now,
): Promise<T> {
  const giveUpAt = now() + patienceMs;
  for (let waitMs = 500; ; waitMs = Math.min(waitMs * 2, 8_000)) {
    try {
      return await send();
    } catch (e) {
      if (!isUnreachable(e) || now() + waitMs > giveUpAt) throw e;
      io.stderr.write(`scope join: ${(e as Error).message}; trying again in ${waitMs / 1000} s\n`);
      await sleep(waitMs);
    }
  }
}

async function readToken(v: Record<string, string | boolean | undefined>, io: CommandIO): Promise<string> {
  const file = v["token-file"];
  if (typeof file !== "string")
    throw new ScopeError("usage", "a join token is needed: --token-file F, or --token-file - for stdin");
  let token: string;
  if (file === "-") {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(Buffer.from(c as Buffer));
    token = Buffer.concat(chunks).toString("utf8");
  } else
    token = await readFile(file, "utf8").catch(() => {
      throw new ScopeError("usage", `--token-file ${file}: cannot read`);
    });
  token = token.trim();
  if (token.length < 8) throw new ScopeError("usage", "the join token is too short");
  return token;
}

async function ensureKey<K extends Identity | WgKeyPair>(
  path: string,
  load: () => Promise<K>,
  create: (p: string) => Promise<K>,
): Promise<K> {
  return existsSync(path) ? load() : create(path);
}

function edgeConfigText(o: {
  url: string;
  network: string;
  stateDir: string;
  iface: string;
  listenPort: number;
  timers: string;
  psk?: string;
  pskInterval?: string;
  backend: string;
  caFile: string | undefined;
  pin: string | undefined;
  endpoint?: string;
  defaultState: boolean;
}): string {
  return [
    "# Written by 'scope join'. Keys live in the files named here, never in this file.",
    "[registry]",
    `url = ${o.url}`,
    ...(o.caFile !== undefined ? [`ca_file = ${o.caFile}`] : []),
    ...(o.pin !== undefined ? [`pin = ${o.pin}`] : []),
    "",
    "[network]",
    `name = ${o.network}`,
    "",
    "[identity]",
    `key_file = ${o.stateDir}/identity.key`,
    "",
    "[wireguard]",
    `interface = ${o.iface}`,
    `listen_port = ${o.listenPort}`,
    `private_key_file = ${o.stateDir}/wg.key`,
    ...(o.endpoint ? [`endpoint = ${o.endpoint}`] : []),
    "",
    "[daemon]",
    `timers = ${o.timers}`,
    // A non-default state dir usually means several edges share a filesystem (the lab): keep their sockets apart too.
    ...(o.defaultState ? [] : [`state_dir = ${o.stateDir}`, `control_socket = ${o.stateDir}/control.sock`]),
    "",
    ...(o.psk !== undefined || o.pskInterval !== undefined
      ? [
          "[psk]",
          ...(o.psk ? [`mode = ${o.psk}`] : []),
          ...(o.pskInterval ? [`interval = ${o.pskInterval}`] : []),
          "",
        ]
      : []),
    "[backend]",
    `type = ${o.backend}`,
    "",
  ].join("\n");
}

function start(io: CommandIO, network: string, confPath: string, stateDir: string, noStart: boolean): number {
  const systemd = existsSync("/run/systemd/system");
  if (noStart || systemd) {
    io.stdout.write(
      systemd
        ? `start it with: systemctl enable --now scope@${network}\n`
        : `start it with: scope daemon --config ${confPath}\n`,
    );
    return 0;
  }
  const main = fileURLToPath(new URL("../main.js", import.meta.url));
  const logPath = `${stateDir}/daemon.log`;
  const out = openSync(logPath, "a", 0o600);
  const child = spawn(process.execPath, [main, "daemon", "--config", confPath], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  child.unref();
  io.stdout.write(`daemon started (pid ${child.pid}), log: ${logPath}\n`);
  return 0;
}
