/**
 * Unit-file text → structures, as systemd reads it (systemd.syntax(7)):
 * "[Section]" headers, "Key=Value" with whitespace around "=" ignored,
 * "#" and ";" comment lines and blank lines skipped, a trailing backslash
 * joining the next line with a space (comment lines inside the join are
 * skipped), repeated sections kept in order.
 *
 * parseNetdev/parseNetwork then give the keys systemd's meaning: a scalar
 * set twice keeps the later value, an empty value resets to the default,
 * AllowedIPs= accumulates and an empty AllowedIPs= clears the list. Where
 * networkd logs "ignoring assignment" and carries on, these parsers fail:
 * Scope reads these files to check them, and a silently dropped peer is
 * the bug we want to see. Unknown keys and sections stay warnings, as in
 * networkd. Every problem is reported as "FILE:LINE: message", all at once.
 */
import type { NetdevConfig, NetdevPeer, NetworkConfig } from "./model.js";
import {
  UINT32_MAX,
  checkCidr,
  checkEndpoint,
  checkIfname,
  checkKey,
  parsePort,
  parseUint,
} from "./values.js";

export interface UnitEntry {
  key: string;
  value: string;
  /** 1-based line where the entry starts (continuations keep the first line). */
  line: number;
}

export interface UnitSection {
  name: string;
  line: number;
  entries: UnitEntry[];
}

export class UnitFileError extends Error {
  /** One "FILE:LINE: message" per problem; message joins them with newlines. */
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join("\n"));
    this.name = "UnitFileError";
    this.problems = problems;
  }
}

export function parseUnitFile(text: string, file = "<input>"): UnitSection[] {
  const problems: string[] = [];
  const sections: UnitSection[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = (lines[i] as string).trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) {
      line = line.slice(0, -1) + " ";
      let next = (lines[++i] as string).trim();
      while ((next.startsWith("#") || next.startsWith(";")) && i + 1 < lines.length)
        next = (lines[++i] as string).trim();
      if (next.startsWith("#") || next.startsWith(";")) next = "";
      line += next;
    }
    // A backslash on the very last line has nothing to join: systemd drops it.
    if (line.endsWith("\\")) line = line.slice(0, -1).trimEnd();
    if (line.startsWith("[")) {
      const m = /^\[([^[\]]+)\]$/.exec(line);
      if (!m) problems.push(`${file}:${start}: malformed section header "${line}"`);
      else sections.push({ name: m[1] as string, line: start, entries: [] });
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) {
      problems.push(`${file}:${start}: expected Key=Value, got "${line}"`);
      continue;
    }
    const current = sections[sections.length - 1];
    if (!current) {
      problems.push(`${file}:${start}: assignment outside of any [Section]`);
      continue;
    }
    current.entries.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), line: start });
  }
  if (problems.length) throw new UnitFileError(problems);
  return sections;
}

/** Collects problems and warnings while a table of key handlers fills a target. */
class Reader {
  readonly problems: string[] = [];
  readonly warnings: string[] = [];
  constructor(readonly file: string) {}
  at(line: number, msg: string): void {
    this.problems.push(`${this.file}:${line}: ${msg}`);
  }
  warn(line: number, msg: string): void {
    this.warnings.push(`${this.file}:${line}: ${msg}`);
  }
  /** Runs check; on a problem records it against the entry and returns undefined. */
  value<T>(e: UnitEntry, parse: (v: string) => T | undefined, what: string): T | undefined {
    const v = parse(e.value);
    if (v === undefined) this.at(e.line, `${e.key}=${e.value}: ${what}`);
    return v;
  }
  checked(e: UnitEntry, check: (v: string) => string | undefined): string | undefined {
    const problem = check(e.value);
    if (problem) this.at(e.line, `${e.key}=: ${problem}`);
    return problem ? undefined : e.value;
  }
}

type Handler<T> = (target: T, e: UnitEntry, r: Reader) => void;
type Table<T> = Record<string, Handler<T>>;

/** Assign a scalar key: empty resets it, otherwise the parsed value (later assignments win). */
function scalar<T, K extends keyof T>(
  field: K,
  parse: (e: UnitEntry, r: Reader) => T[K] | undefined,
): Handler<T> {
  return (t, e, r) => {
    if (e.value === "") {
      delete t[field];
      return;
    }
    const v = parse(e, r);
    if (v !== undefined) t[field] = v;
  };
}

const uint = (min: number, max: number) => (e: UnitEntry, r: Reader) =>
  r.value(e, (v) => parseUint(v, min, max), `not a number in ${min}..${max}`);
const absolutePath = (e: UnitEntry, r: Reader) =>
  r.checked(e, (v) =>
    v.startsWith("/") && !v.split("/").includes("..") ? undefined : "not an absolute path",
  );
const routeTable = (e: UnitEntry, r: Reader) =>
  r.value(
    e,
    (v) => (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(v) || parseUint(v, 0, UINT32_MAX) !== undefined ? v : undefined),
    "not a table name or number",
  );
const inlineSecret: Handler<unknown> = (_t, e, r) => {
  if (r.checked(e, checkKey) !== undefined)
    r.warn(e.line, `${e.key}= puts a secret in the unit file; Scope writes ${e.key}File= instead`);
};

/** MTUBytes= takes K, M, G suffixes to the base 1024. */
function parseBytes(v: string): number | undefined {
  const m = /^([0-9]{1,10})([KMG]?)$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]) * 1024 ** ["", "K", "M", "G"].indexOf(m[2] as string);
  return n >= 1 && n <= UINT32_MAX ? n : undefined;
}

const NETDEV: Table<NetdevConfig> = {
  Name: scalar("name", (e, r) => r.checked(e, checkIfname)),
  Kind: scalar("kind", (e) => e.value),
  Description: scalar("description", (e) => e.value),
  MTUBytes: scalar("mtuBytes", (e, r) => r.value(e, parseBytes, "not a byte count (optionally K, M, G)")),
};

const WIREGUARD: Table<NetdevConfig> = {
  PrivateKey: inlineSecret,
  PrivateKeyFile: scalar("privateKeyFile", absolutePath),
  ListenPort: (t, e, r) => {
    if (e.value === "" || e.value === "auto") delete t.listenPort;
    else {
      const p = r.value(e, parsePort, `not a port (1..65535) or "auto"`);
      if (p !== undefined) t.listenPort = p;
    }
  },
  FirewallMark: scalar("firewallMark", uint(0, UINT32_MAX)),
  RouteTable: scalar("routeTable", routeTable),
  RouteMetric: scalar("routeMetric", uint(0, UINT32_MAX)),
};

interface PeerDraft extends Partial<NetdevPeer> {
  allowedIps: string[];
}

const PEER: Table<PeerDraft> = {
  PublicKey: scalar("publicKey", (e, r) => r.checked(e, checkKey)),
  PresharedKey: inlineSecret,
  PresharedKeyFile: scalar("presharedKeyFile", absolutePath),
  AllowedIPs: (t, e, r) => {
    if (e.value === "") t.allowedIps = [];
    // systemd splits on commas and whitespace alike.
    for (const ip of e.value.split(/[\s,]+/).filter(Boolean)) {
      const problem = checkCidr(ip);
      if (problem) r.at(e.line, `AllowedIPs=: ${problem}`);
      else t.allowedIps.push(ip);
    }
  },
  Endpoint: scalar("endpoint", (e, r) => r.checked(e, checkEndpoint)),
  PersistentKeepalive: (t, e, r) => {
    if (e.value === "" || e.value === "off") delete t.persistentKeepalive;
    else {
      const ka = r.value(e, (v) => parseUint(v, 0, 65535), `not 0..65535 or "off"`);
      if (ka === 0) delete t.persistentKeepalive;
      else if (ka !== undefined) t.persistentKeepalive = ka;
    }
  },
  RouteTable: scalar("routeTable", routeTable),
  RouteMetric: scalar("routeMetric", uint(0, UINT32_MAX)),
};

function apply<T>(table: Table<T>, target: T, s: UnitSection, r: Reader): void {
  for (const e of s.entries) {
    const h = Object.hasOwn(table, e.key) ? table[e.key] : undefined;
    if (h) h(target, e, r);
    else r.warn(e.line, `unknown key ${e.key}= in [${s.name}], networkd ignores it`);
  }
}

function unknownSection(s: UnitSection, r: Reader): void {
  // networkd silently skips "X-" sections: they are for other tools.
  if (!s.name.startsWith("X-")) r.warn(s.line, `unknown section [${s.name}], networkd ignores it`);
}

export interface Parsed<T> {
  config: T;
  /** Things networkd would also ignore (unknown keys, inline secrets): worth a log line, not a failure. */
  warnings: string[];
}

export function parseNetdev(text: string, file = "<input>"): Parsed<NetdevConfig> {
  const r = new Reader(file);
  const config = { peers: [] } as unknown as NetdevConfig;
  const peers: { draft: PeerDraft; line: number }[] = [];
  for (const s of parseUnitFile(text, file)) {
    // [NetDev] and [WireGuard] may repeat and then continue the same settings;
    // every [WireGuardPeer] is a new peer.
    if (s.name === "NetDev") apply(NETDEV, config, s, r);
    else if (s.name === "WireGuard") apply(WIREGUARD, config, s, r);
    else if (s.name === "WireGuardPeer") {
      const draft: PeerDraft = { allowedIps: [] };
      apply(PEER, draft, s, r);
      peers.push({ draft, line: s.line });
    } else if (s.name !== "Match") unknownSection(s, r);
  }
  if (config.name === undefined) r.at(1, "[NetDev] Name= is required");
  if (config.kind === undefined) r.at(1, "[NetDev] Kind= is required");
  else if (config.kind !== "wireguard") r.at(1, `Kind=${config.kind}: only wireguard netdevs are read here`);
  const seen = new Map<string, number>();
  for (const { draft, line } of peers) {
    if (draft.publicKey === undefined) {
      r.at(line, "[WireGuardPeer] without PublicKey= (networkd would drop this peer)");
      continue;
    }
    const first = seen.get(draft.publicKey);
    if (first !== undefined) r.at(line, `peer ${draft.publicKey} already defined at line ${first}`);
    seen.set(draft.publicKey, line);
    const { publicKey, allowedIps, ...rest } = draft;
    config.peers.push({ publicKey, ...rest, allowedIps });
  }
  if (r.problems.length) throw new UnitFileError(r.problems);
  return { config: ordered(config), warnings: r.warnings };
}

/** Fixed key order, so two configs that mean the same compare equal with deep equality. */
function ordered(c: NetdevConfig): NetdevConfig {
  const { name, kind, peers, ...rest } = c;
  return {
    name,
    kind,
    ...rest,
    peers: peers.map(({ publicKey, allowedIps, ...p }) => ({ publicKey, ...p, allowedIps })),
  };
}

const NETWORK_MATCH: Table<NetworkConfig> = { Name: scalar("matchName", (e) => e.value) };
const NETWORK_LINK: Table<NetworkConfig> = {
  RequiredForOnline: scalar("requiredForOnline", (e) => e.value),
  ActivationPolicy: scalar("activationPolicy", (e) => e.value),
};
const NETWORK_NETWORK: Table<NetworkConfig> = {
  Address: (t, e, r) => {
    if (e.value === "") t.addresses = [];
    else if (r.checked(e, checkCidr) !== undefined) t.addresses.push(e.value);
  },
  LinkLocalAddressing: scalar("linkLocalAddressing", (e) => e.value),
  IPv6AcceptRA: scalar("ipv6AcceptRA", (e) => e.value),
};

/** The subset of a .network file Scope writes; other keys are warnings. */
export function parseNetwork(text: string, file = "<input>"): Parsed<NetworkConfig> {
  const r = new Reader(file);
  const config = { addresses: [] } as unknown as NetworkConfig;
  const tables: Record<string, Table<NetworkConfig>> = {
    Match: NETWORK_MATCH,
    Link: NETWORK_LINK,
    Network: NETWORK_NETWORK,
  };
  for (const s of parseUnitFile(text, file)) {
    const table = Object.hasOwn(tables, s.name) ? tables[s.name] : undefined;
    if (table) apply(table, config, s, r);
    else unknownSection(s, r);
  }
  if (config.matchName === undefined) r.at(1, "[Match] Name= is required for a Scope .network file");
  if (r.problems.length) throw new UnitFileError(r.problems);
  const { matchName, addresses, ...rest } = config;
  return { config: { matchName, addresses, ...rest }, warnings: r.warnings };
}
