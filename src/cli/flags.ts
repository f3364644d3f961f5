/**
 * The rules a command-line value must follow, checked by main.ts where the
 * value enters (before run(), so before any file, socket or registry is
 * touched). They are the config schema's and the registry's own rules, so a
 * value the CLI accepts is one the config file and the registry accept too.
 * A check returns the problem in a few words, or undefined when the value is
 * fine; main.ts prints it as `scope: --flag VALUE: problem` and exits 2.
 */
import { statSync } from "node:fs";
import type { z } from "zod";
import { Duration, ListenAddress, PskInterval, PskMode, TimerProfileName } from "../config/schema.js";
import { parseEndpoint } from "../core/ip.js";
import { checkInterfaceName, checkNetworkName } from "../core/names.js";
import { PeerName, PeerRole, Topology, TokenInput } from "../core/protocol.js";
import { checkCidr6, parseCidr4 } from "../registry/ipam.js";
import { PIN_RE } from "../client/tls.js";
import { registryUrls } from "../client/registry-list.js";

export type ValueCheck = (value: string) => string | undefined;

const fromSchema =
  (schema: z.ZodType): ValueCheck =>
  (v) => {
    const r = schema.safeParse(v);
    return r.success ? undefined : (r.error.issues[0]?.message ?? "invalid");
  };

/** A thrown ScopeError's message, without the "cidr: " the registry puts first. */
const fromThrower =
  (f: (v: string) => unknown): ValueCheck =>
  (v) => {
    try {
      f(v);
      return undefined;
    } catch (e) {
      return (e as Error).message.replace(/^cidr6?: /, "");
    }
  };

const integer =
  (min: number, max: number): ValueCheck =>
  (v) =>
    /^[0-9]{1,9}$/.test(v) && Number(v) >= min && Number(v) <= max ? undefined : `expected ${min}-${max}`;

const path: ValueCheck = (v) =>
  v === "" ? "empty path" : v.includes("\0") ? "NUL in path" : v.length > 4096 ? "path too long" : undefined;

/** A path that must name an existing file (read at once). */
const file: ValueCheck = (v) => {
  const bad = path(v);
  if (bad) return bad;
  try {
    return statSync(v).isDirectory() ? "is a directory" : undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "cannot read";
  }
};

const url: ValueCheck = (v) => {
  if (!/^https?:\/\//.test(v)) return "expected http(s)://HOST[:PORT]";
  try {
    const u = new URL(v);
    return u.hostname === "" ? "expected http(s)://HOST[:PORT]" : undefined;
  } catch {
    return "not a URL";
  }
};

/** One URL, or several replicas' comma-separated ("https://a:8470, https://b:8470"). */
const urls: ValueCheck = (v) => {
  const list = registryUrls(v);
  return list.length === 0
    ? "expected http(s)://HOST[:PORT]"
    : list.map(url).find((bad) => bad !== undefined);
};

const durationWithin = (schema: z.ZodType<number>, max: number): ValueCheck => {
  const syntax = fromSchema(Duration);
  return (v) => {
    const bad = syntax(v);
    if (bad) return bad;
    const r = schema.safeParse(Duration.parse(v));
    return r.success ? undefined : `expected 1s to ${max / 86_400}d`;
  };
};

export const CHECKS = {
  listen: fromSchema(ListenAddress),
  path,
  file,
  /** A file, or "-" for standard input (secrets never come on argv). */
  secretFile: (v: string) => (v === "-" ? undefined : file(v)),
  url,
  urls,
  /** The registry certificate's public-key pin (src/client/tls.ts). */
  pin: (v: string) => (PIN_RE.test(v) ? undefined : "expected sha256/ and 44 base64 characters"),
  network: (v: string) =>
    checkNetworkName(v) === undefined ? undefined : "not a network name (a-z 0-9 -, 1-15)",
  peerName: fromSchema(PeerName),
  iface: (v: string) => checkInterfaceName(v),
  cidr: fromThrower(parseCidr4),
  cidr6: fromThrower(checkCidr6),
  topology: fromSchema(Topology),
  timers: fromSchema(TimerProfileName),
  backend: (v: string) => (/^[a-z0-9-]{1,64}$/.test(v) ? undefined : "expected a backend name (a-z 0-9 -)"),
  /** The WireGuard port; the prober takes the next one. */
  listenPort: integer(1, 65534),
  count: integer(1, 100),
  uses: integer(1, 100_000),
  expires: durationWithin(TokenInput.shape.expiresIn.unwrap(), 366 * 86_400),
  /** `sqlite:PATH` of an existing database file (scope registry migrate --from). */
  sqliteSource: (v: string) =>
    v.startsWith("sqlite:") ? file(v.slice("sqlite:".length)) : "expected sqlite:PATH",
  /** A PostgreSQL URL without a password: every user can read argv. */
  postgresUrl: (v: string) =>
    !/^postgres(ql)?:\/\/[^/]/.test(v)
      ? "expected postgres://USER@HOST:PORT/DB"
      : /^postgres(ql)?:\/\/[^@/]*:[^@/]*@/.test(v)
        ? "no password on the command line; put the URL in a file for --to-file"
        : undefined,
  role: fromSchema(PeerRole),
  /** A fixed public WireGuard endpoint: an IP address and port ([v6]:PORT), no name. */
  endpoint: (v: string) =>
    parseEndpoint(v) ? undefined : "expected ADDR:PORT (an IP address; [v6]:PORT for IPv6)",
  pskMode: fromSchema(PskMode),
  pskInterval: fromSchema(PskInterval),
} satisfies Record<string, ValueCheck>;

/** How a value shows in a message: as typed, quoted when that would be unreadable. */
export const shownValue = (v: string): string =>
  v === "" || /[\s"\\]/.test(v) || v.length > 80 ? JSON.stringify(v.slice(0, 80)) : v;
