/**
 * DesiredState → systemd-networkd files, as pure functions (STYLE "networkd/").
 *
 * Two steps, so parse.ts can be tested against the first: netdevModel /
 * networkModel map the desired state to plain structures (validating it:
 * a value that would break the file or smuggle in a line is refused here),
 * formatNetdev / formatNetwork print them. Peers are sorted by public key so
 * the same peer set always gives the same bytes, whatever order the core
 * lists it in: files.ts then sees "unchanged" and nothing is rewritten.
 */
import type { DesiredState } from "../src/core/backend.js";
import { ScopeError } from "../src/core/errors.js";
import { sha256Hex } from "../src/crypto/keys.js";
import {
  DEFAULT_NETWORK_DIR,
  checkNetworkName,
  unitNames,
  type NetdevConfig,
  type NetdevPeer,
  type NetworkConfig,
} from "./model.js";
import { checkCidr, checkEndpoint, checkIfname, checkKey, parsePort } from "./values.js";

export interface RenderOptions {
  /** Network name ("corp"): file names and Description=. */
  network: string;
  /** Where the files go; key paths inside the .netdev point here. Default /etc/systemd/network. */
  dir?: string;
  /** [WireGuard] extras from the [backend] section of NET.conf; absent = networkd defaults. */
  firewallMark?: number;
  /** Default "off" in networkd: AllowedIPs add no routes; the Address= prefix route carries the mesh. */
  routeTable?: string;
  routeMetric?: number;
}

/** One file to place. secret files hold key material and must never be logged or diffed in output. */
export interface RenderedFile {
  name: string;
  content: string;
  secret: boolean;
}

const fail = (msg: string): never => {
  throw new ScopeError("config", `networkd: ${msg}`);
};
const must = (problem: string | undefined, what: string): void => {
  if (problem) fail(`${what}: ${problem}`);
};

/** 16 hex digits of SHA-256 over the public key: stable, file-name safe, not a secret. */
export const peerDigest = (publicKey: string): string => sha256Hex(publicKey).slice(0, 16);

const joinPath = (dir: string, name: string): string => `${dir.replace(/\/+$/, "")}/${name}`;

export function netdevModel(desired: DesiredState, opts: RenderOptions): NetdevConfig {
  const { iface } = desired;
  must(checkNetworkName(opts.network), "network");
  must(checkIfname(iface.name), "interface");
  must(checkKey(iface.privateKey), "private key");
  if (parsePort(String(iface.listenPort)) === undefined)
    fail(`listen port ${iface.listenPort} is not 1..65535`);
  if (iface.mtu !== undefined && !(Number.isInteger(iface.mtu) && iface.mtu >= 68 && iface.mtu <= 65535))
    fail(`MTU ${iface.mtu} is not 68..65535`);
  const dir = opts.dir ?? DEFAULT_NETWORK_DIR;
  const names = unitNames(opts.network);
  const seen = new Set<string>();
  const peers = [...desired.peers]
    .sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0))
    .map((p): NetdevPeer => {
      must(checkKey(p.publicKey), "peer public key");
      if (seen.has(p.publicKey)) fail(`peer ${p.publicKey} is listed twice`);
      seen.add(p.publicKey);
      if (p.presharedKey !== undefined) must(checkKey(p.presharedKey), "preshared key");
      for (const ip of p.allowedIps) must(checkCidr(ip), "allowed IP");
      if (p.endpoint !== undefined) must(checkEndpoint(p.endpoint), "endpoint");
      const ka = p.persistentKeepalive ?? 0;
      if (!(Number.isInteger(ka) && ka >= 0 && ka <= 65535)) fail(`keepalive ${ka} is not 0..65535`);
      return {
        publicKey: p.publicKey,
        ...(p.presharedKey !== undefined && {
          presharedKeyFile: joinPath(dir, names.psk(peerDigest(p.publicKey))),
        }),
        allowedIps: [...p.allowedIps],
        ...(p.endpoint !== undefined && { endpoint: p.endpoint }),
        ...(ka > 0 && { persistentKeepalive: ka }),
      };
    });
  if (opts.routeTable !== undefined && !/^[A-Za-z0-9_-]+$/.test(opts.routeTable))
    fail(`route table "${opts.routeTable}" is not a name or number`);
  return {
    name: iface.name,
    kind: "wireguard",
    description: `Scope mesh ${opts.network}`,
    ...(iface.mtu !== undefined && { mtuBytes: iface.mtu }),
    privateKeyFile: joinPath(dir, names.privateKey),
    listenPort: iface.listenPort,
    ...(opts.firewallMark !== undefined && { firewallMark: opts.firewallMark }),
    ...(opts.routeTable !== undefined && { routeTable: opts.routeTable }),
    ...(opts.routeMetric !== undefined && { routeMetric: opts.routeMetric }),
    peers,
  };
}

export function networkModel(desired: DesiredState, opts: RenderOptions): NetworkConfig {
  must(checkNetworkName(opts.network), "network");
  must(checkIfname(desired.iface.name), "interface");
  for (const a of desired.iface.addresses) must(checkCidr(a), "address");
  return {
    matchName: desired.iface.name,
    addresses: [...desired.iface.addresses],
    // The mesh is not what "the machine is online" means: boot must not wait for it.
    requiredForOnline: "no",
    // WireGuard is layer 3: no fe80:: address, no router advertisements to wait for.
    linkLocalAddressing: "no",
    ipv6AcceptRA: "no",
  };
}

const header = (network: string, what: string, iface: string): string[] => [
  `# ${what} of the Scope mesh "${network}" (interface ${iface}).`,
  "# Managed by Scope: rewritten whenever the mesh changes, local edits are lost.",
  "# Live peers, paths (direct / via hub), handshakes and PSK epochs: `scope status`.",
  `# Link state as networkd sees it: \`networkctl status ${iface}\`.`,
  "# Keys are in separate root:systemd-network 0640 files, never in this file.",
];

type Line = [key: string, value: string | number | undefined];

function section(name: string, lines: Line[]): string {
  const body = lines.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  return [`[${name}]`, ...body].join("\n");
}

/**
 * A value must survive systemd's line reader unchanged: a control character
 * would end the line early (and let the rest be read as a new key), a
 * trailing backslash would glue the next line on, and outer whitespace is
 * stripped on read.
 */
function assertOneLine(value: unknown): void {
  if (typeof value === "string") {
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(value) || value.endsWith("\\") || value.trim() !== value)
      fail(`value ${JSON.stringify(value)} cannot be written on one unit-file line`);
  } else if (Array.isArray(value)) value.forEach(assertOneLine);
  else if (value !== null && typeof value === "object") Object.values(value).forEach(assertOneLine);
}

export function formatNetdev(cfg: NetdevConfig, comment: string[] = []): string {
  assertOneLine(cfg);
  const parts = [
    section("NetDev", [
      ["Name", cfg.name],
      ["Kind", cfg.kind],
      ["Description", cfg.description],
      ["MTUBytes", cfg.mtuBytes],
    ]),
    section("WireGuard", [
      ["PrivateKeyFile", cfg.privateKeyFile],
      ["ListenPort", cfg.listenPort],
      ["FirewallMark", cfg.firewallMark],
      ["RouteTable", cfg.routeTable],
      ["RouteMetric", cfg.routeMetric],
    ]),
    ...cfg.peers.map((p) =>
      section("WireGuardPeer", [
        ["PublicKey", p.publicKey],
        ["PresharedKeyFile", p.presharedKeyFile],
        ["AllowedIPs", p.allowedIps.length > 0 ? p.allowedIps.join(",") : undefined],
        ["Endpoint", p.endpoint],
        ["PersistentKeepalive", p.persistentKeepalive],
        ["RouteTable", p.routeTable],
        ["RouteMetric", p.routeMetric],
      ]),
    ),
  ];
  return [...comment, ...(comment.length ? [""] : []), parts.join("\n\n"), ""].join("\n");
}

export function formatNetwork(cfg: NetworkConfig, comment: string[] = []): string {
  assertOneLine(cfg);
  const parts = [
    section("Match", [["Name", cfg.matchName]]),
    section("Link", [
      ["RequiredForOnline", cfg.requiredForOnline],
      ["ActivationPolicy", cfg.activationPolicy],
    ]),
    section("Network", [
      ...cfg.addresses.map((a): Line => ["Address", a]),
      ["LinkLocalAddressing", cfg.linkLocalAddressing],
      ["IPv6AcceptRA", cfg.ipv6AcceptRA],
    ]),
  ];
  return [...comment, ...(comment.length ? [""] : []), parts.join("\n\n"), ""].join("\n");
}

export const renderNetdev = (desired: DesiredState, opts: RenderOptions): string =>
  formatNetdev(netdevModel(desired, opts), header(opts.network, "WireGuard device", desired.iface.name));

export const renderNetwork = (desired: DesiredState, opts: RenderOptions): string =>
  formatNetwork(networkModel(desired, opts), header(opts.network, "Addresses", desired.iface.name));

/** Everything for one network: .netdev, .network, the private key and one PSK file per peer that has one. */
export function renderFiles(desired: DesiredState, opts: RenderOptions): RenderedFile[] {
  const names = unitNames(opts.network);
  return [
    { name: names.netdev, content: renderNetdev(desired, opts), secret: false },
    { name: names.network, content: renderNetwork(desired, opts), secret: false },
    { name: names.privateKey, content: `${desired.iface.privateKey}\n`, secret: true },
    ...desired.peers
      .filter((p) => p.presharedKey !== undefined)
      .map((p) => ({
        name: names.psk(peerDigest(p.publicKey)),
        content: `${p.presharedKey}\n`,
        secret: true,
      })),
  ];
}
