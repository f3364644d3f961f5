import { spawn } from "node:child_process";
import { existsSync, openSync } from "node:fs";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { loadEdgeConfig, parseEdgeConfig } from "../../config/load.js";
import { ScopeError } from "../../core/errors.js";
import { formatEndpoint, parseEndpoint } from "../../core/ip.js";
import { composeCandidates } from "../../core/netcheck.js";
import { NetworkName, PeerName } from "../../core/protocol.js";
import { RegistryClient } from "../../client/registry-client.js";
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
  writeJoinState,
  writePrivateFile,
} from "../../daemon/files.js";
import { localAddresses } from "../../daemon/netcheck-runner.js";
import { registerSecret } from "../../log.js";
import type { Command, CommandIO } from "../command.js";
import { hostname } from "node:os";

export const command: Command = {
  name: "join",
  summary: "Join this host to a network: create keys, write /etc/scope/NET.conf, start the daemon",
  usage:
    "join REGISTRY_URL --network NET (--token-file F | --token - | --token T) [--name N] [--backend auto|wg|networkmanager|networkd] [--listen-port P] [--interface IF] [--timers fast|seed] [--endpoint ADDR:PORT] [--config-dir DIR] [--state-dir DIR] [--no-start | --foreground]",
  help: [
    "Keys are created once under STATE_DIR/NET (identity.key, wg.key; 0600, directory 0700)",
    "and reused when joining again. The token is read from --token-file F or stdin",
    "(--token -); --token T works but is visible to every user in ps(1).",
    "Without --no-start the daemon is started in the background, or, when systemd",
    "runs, the 'systemctl enable --now scope@NET' line to run is printed.",
    "With --foreground this process becomes the daemon (as 'scope daemon --config",
    "CONFIG' would), without a second start-up: the quickest way into the mesh.",
    "--endpoint ADDR:PORT publishes a fixed public WireGuard endpoint (a hub's; written",
    "to the config as [wireguard] endpoint). Whether the host is a hub is the token's",
    "or the admin's decision (scope token create --role hub), never this host's.",
  ].join("\n"),
  options: {
    network: { type: "string", short: "n" },
    token: { type: "string" },
    "token-file": { type: "string" },
    name: { type: "string" },
    backend: { type: "string", default: "auto" },
    "listen-port": { type: "string", default: "51820" },
    interface: { type: "string", default: "scope0" },
    timers: { type: "string", default: "fast" },
    endpoint: { type: "string" },
    "config-dir": { type: "string", default: DEFAULT_CONFIG_DIR },
    "state-dir": { type: "string", default: DEFAULT_STATE_ROOT },
    "no-start": { type: "boolean" },
    foreground: { type: "boolean" },
  },
  positionals: { min: 1, max: 1, names: ["REGISTRY_URL"] },
  async run(args, io) {
    const v = args.values as Record<string, string | boolean | undefined>;
    const url = args.positionals[0] ?? "";
    if (!/^https?:\/\/./.test(url))
      throw new ScopeError("usage", "REGISTRY_URL must be http(s)://HOST[:PORT]");
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
    const identity = await ensureKey(
      `${stateDir}/identity.key`,
      () => loadIdentity(`${stateDir}/identity.key`),
      async (p) => {
        const id = generateIdentity();
        await writePrivateFile(p, identityFileText(id));
        return id;
      },
    );
    const wg = await ensureKey(
      `${stateDir}/wg.key`,
      () => loadWgKey(`${stateDir}/wg.key`),
      async (p) => {
        const k = generateWgKeyPair();
        await writePrivateFile(p, k.privateKey + "\n");
        return k;
      },
    );

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
      backend: String(v.backend),
      ...(endpoint ? { endpoint: formatEndpoint(endpoint) } : {}),
      defaultState: stateDir === stateDirOf(DEFAULT_STATE_ROOT, network),
    });
    // The interface is made while the join request is on the wire (daemon/edge.ts).
    // A failure here is the daemon's to report, with its own retries.
    const prepared =
      v.foreground === true
        ? daemonModule
            ?.then((m) => m.prepareInterface(parseEdgeConfig(confPath, confText), wg.privateKey))
            .catch(() => undefined)
        : undefined;
    const client = new RegistryClient({ url, network, identity });
    const response = await client
      .join(token, {
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
      })
      .catch(async (e: unknown) => {
        client.close();
        const p = await prepared;
        if (p && (await p.created)) await p.backend.close({ remove: true }).catch(() => undefined);
        throw e;
      });
    await writeJoinState(stateDir, {
      network: response.network,
      self: response.self,
      registryKey: response.registryKey,
      reflectorPorts: response.reflectorPorts,
    });

    await mkdir(String(v["config-dir"]), { recursive: true, mode: 0o755 });
    await writeFile(confPath, confText, { mode: 0o640 });
    io.stdout.write(
      `joined ${network} as ${response.self.name} (${response.self.address}), peer id ${response.self.id}, WireGuard key ${shortKey(wg.publicKey)}\n` +
        `config: ${confPath}\n`,
    );
    if (v.foreground === true) {
      // Hand over to the daemon in this process: no second node start-up.
      const { runDaemon } = await (daemonModule ?? import("./daemon.js"));
      return runDaemon(loadEdgeConfig(confPath), args.values["log-level"] === undefined, await prepared);
    }
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

async function readToken(v: Record<string, string | boolean | undefined>, io: CommandIO): Promise<string> {
  let token: string;
  if (typeof v["token-file"] === "string")
    token = await readFile(v["token-file"], "utf8").catch(() => {
      throw new ScopeError("usage", `cannot read --token-file ${v["token-file"]}`);
    });
  else if (v.token === "-") {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(Buffer.from(c as Buffer));
    token = Buffer.concat(chunks).toString("utf8");
  } else if (typeof v.token === "string") {
    io.stderr.write(
      "scope: warning: --token T is visible to other users in ps(1); prefer --token-file F or --token -\n",
    );
    token = v.token;
  } else
    throw new ScopeError("usage", "a join token is needed: --token-file F, --token - (stdin) or --token T");
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
  backend: string;
  endpoint?: string;
  defaultState: boolean;
}): string {
  return [
    "# Written by 'scope join'. Keys live in the files named here, never in this file.",
    "[registry]",
    `url = ${o.url}`,
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
