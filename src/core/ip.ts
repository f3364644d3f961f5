/**
 * The one IP module: addresses, prefixes and endpoints as text and bytes,
 * for the core, the registry, src/wireguard, networkd/ and the plugins.
 * Pure (no node:net: src/core must stay pure), and hot in the engine, so the
 * parsers scan character codes instead of splitting and matching.
 *
 * What counts as an address is exactly what node:net's isIP/isIPv4/isIPv6
 * accept (test/unit/core/ip.test.ts compares them on thousands of random
 * strings):
 * - IPv4 is a dotted quad of decimal octets 0-255 with **no leading zero**
 *   ("010.1.1.1" and "1.2.3.00" are refused). inet_aton would read "010" as
 *   octal 8, other parsers as decimal 10; WireGuard, systemd and node:net
 *   refuse it, so Scope does too rather than guess.
 * - IPv6 is RFC 4291 text: 1-4 hex digits per group, at most one "::",
 *   an optional dotted-quad tail (same IPv4 rule), and an optional zone
 *   "%" + one or more of [0-9A-Za-z.:-] (dropped by the parsers here).
 *
 * Canonical text is RFC 5952 (lower case, the first longest run of two or
 * more zero groups as "::", IPv4 tails written as hex). Endpoints are
 * written the way WireGuard prints them: "203.0.113.7:51820" and
 * "[2001:db8::7]:51820"; a port is 1-5 decimal digits, 1..65535.
 */
import type { Endpoint } from "./protocol.js";

export type Family = "ipv4" | "ipv6";

// ---- scanning ------------------------------------------------------------

const DOT = 46;
const COLON = 58;
const PERCENT = 37;

/** Value of a hex digit, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** s[from, to) as a dotted quad into out[off, off+4); false when it is not one. */
function scanIpv4(s: string, from: number, to: number, out: Uint8Array | undefined, off: number): boolean {
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return false;
      if (out) out[off + dots] = octet;
      dots++;
      octet = 0;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57) return false;
    if (digits === 1 && octet === 0) return false; // leading zero
    octet = octet * 10 + (c - 48);
    digits++;
    if (octet > 255) return false;
  }
  if (digits === 0 || dots !== 3) return false;
  if (out) out[off + 3] = octet;
  return true;
}

/** A zone: one or more of [0-9A-Za-z.:-] (node:net's rule). */
function isZone(s: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    const ok =
      (c >= 48 && c <= 58) || // 0-9 and ":"
      (c >= 65 && c <= 90) ||
      (c >= 97 && c <= 122) ||
      c === 45 ||
      c === DOT;
    if (!ok) return false;
  }
  return true;
}

/**
 * s[from, to) as IPv6 (zone allowed) into out (16 bytes); false when it is
 * not one. `out` may be undefined to only validate.
 */
function scanIpv6(s: string, from: number, end: number, out: Uint8Array | undefined): boolean {
  let to = end;
  for (let i = from; i < end; i++) {
    if (s.charCodeAt(i) === PERCENT) {
      if (!isZone(s, i + 1, end)) return false;
      to = i;
      break;
    }
  }
  const words = out ? new Uint16Array(8) : undefined;
  let n = 0; // 16-bit groups seen
  let gap = -1; // group index where "::" stands
  let i = from;
  if (to - from < 2) return false;
  if (s.charCodeAt(i) === COLON) {
    if (s.charCodeAt(i + 1) !== COLON) return false;
    gap = 0;
    i += 2;
  }
  while (i < to) {
    let v = 0;
    let j = i;
    while (j < to && j - i < 5) {
      const h = hexDigit(s.charCodeAt(j));
      if (h < 0) break;
      v = v * 16 + h;
      j++;
    }
    if (j < to && s.charCodeAt(j) === DOT) {
      if (n > 6 || !scanIpv4(s, i, to, out, 0)) return false;
      if (out && words) {
        words[n] = (out[0]! << 8) | out[1]!;
        words[n + 1] = (out[2]! << 8) | out[3]!;
      }
      n += 2;
      break;
    }
    if (j === i || j - i > 4 || n === 8) return false;
    if (words) words[n] = v;
    n++;
    if (j === to) break;
    if (s.charCodeAt(j) !== COLON) return false;
    j++;
    if (j === to) return false; // a single trailing ":"
    if (s.charCodeAt(j) === COLON) {
      if (gap >= 0) return false;
      gap = n;
      j++;
    }
    i = j;
  }
  if (gap < 0 ? n !== 8 : n > 7) return false;
  if (out && words) {
    const fill = gap < 0 ? 0 : 8 - n;
    for (let k = 0, w = 0; k < 8; k++) {
      const g = gap >= 0 && k >= gap && k < gap + fill ? 0 : words[w++]!;
      out[2 * k] = g >> 8;
      out[2 * k + 1] = g & 0xff;
    }
  }
  return true;
}

// ---- addresses -----------------------------------------------------------

/** node:net's isIP without node:net: 4, 6, or 0 for anything else. */
export function ipVersion(s: string): 0 | 4 | 6 {
  if (scanIpv4(s, 0, s.length, undefined, 0)) return 4;
  return scanIpv6(s, 0, s.length, undefined) ? 6 : 0;
}

export const isIpv4 = (s: string): boolean => scanIpv4(s, 0, s.length, undefined, 0);
export const isIpv6 = (s: string): boolean => scanIpv6(s, 0, s.length, undefined);

/** 4 bytes, or undefined for anything that is not a dotted quad (no leading zeros). */
export function tryParseIpv4(s: string): Uint8Array | undefined {
  const out = new Uint8Array(4);
  return scanIpv4(s, 0, s.length, out, 0) ? out : undefined;
}

/** 16 bytes, or undefined; accepts "::", an embedded IPv4 tail and a %zone (dropped). */
export function tryParseIpv6(s: string): Uint8Array | undefined {
  const out = new Uint8Array(16);
  return scanIpv6(s, 0, s.length, out) ? out : undefined;
}

/** 4 or 16 bytes, or undefined when text is not a literal address. */
export function parseIp(s: string): Uint8Array | undefined {
  return tryParseIpv4(s) ?? tryParseIpv6(s);
}

/** Throwing forms, for callers that validated their input already (IPAM, reflector). */
export function parseIpv4(s: string): Uint8Array {
  const b = tryParseIpv4(s);
  if (!b) throw new RangeError(`not an IPv4 address: ${s}`);
  return b;
}

export function parseIpv6(s: string): Uint8Array {
  const b = tryParseIpv6(s);
  if (!b) throw new RangeError(`not an IPv6 address: ${s}`);
  return b;
}

export const formatIpv4 = (b: Uint8Array): string => `${b[0] ?? 0}.${b[1] ?? 0}.${b[2] ?? 0}.${b[3] ?? 0}`;

/** RFC 5952 text: lower case, first longest run of zero words (length ≥ 2) as "::". */
export function formatIpv6(b: Uint8Array): string {
  const w = new Array<number>(8);
  for (let i = 0; i < 8; i++) w[i] = ((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += "::";
      i += bestLen - 1;
      continue;
    }
    if (out !== "" && !out.endsWith(":")) out += ":";
    out += w[i]!.toString(16);
  }
  return out;
}

/** 4 bytes as a dotted quad, 16 as RFC 5952 text. */
export const formatIp = (b: Uint8Array): string => (b.length === 4 ? formatIpv4(b) : formatIpv6(b));

/** The family of an address Scope already holds (no validation: any ":" means IPv6). */
export function familyOf(address: string): Family {
  return address.includes(":") ? "ipv6" : "ipv4";
}

const isMapped = (b: Uint8Array): boolean =>
  b[0] === 0 &&
  b[1] === 0 &&
  b[2] === 0 &&
  b[3] === 0 &&
  b[4] === 0 &&
  b[5] === 0 &&
  b[6] === 0 &&
  b[7] === 0 &&
  b[8] === 0 &&
  b[9] === 0 &&
  b[10] === 0xff &&
  b[11] === 0xff;

/**
 * "::ffff:1.2.3.4" (a dual-stack socket's view of IPv4) becomes "1.2.3.4";
 * IPv6 text is canonicalised (zone dropped); anything else is returned as is.
 */
export function normalizeAddress(address: string): string {
  if (!address.includes(":")) return address;
  const b = tryParseIpv6(address);
  if (!b) return address;
  return isMapped(b) ? `${b[12]}.${b[13]}.${b[14]}.${b[15]}` : formatIpv6(b);
}

// ---- prefixes ------------------------------------------------------------

export interface Prefix {
  family: Family;
  /** 4 or 16 bytes, host bits as written. */
  bytes: Uint8Array;
  bits: number;
}

/**
 * "10.0.0.1/24", "fd00::/64", or a bare address (full-length prefix). The
 * length is 1-3 decimal digits up to 32 or 128. Host bits are kept; no zone.
 */
export function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  if (addr.includes("%")) return undefined;
  const bytes = parseIp(addr);
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  const family: Family = bytes.length === 4 ? "ipv4" : "ipv6";
  if (slash < 0) return { family, bytes, bits: max };
  const bitsText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) return undefined;
  return { family, bytes, bits: Number(bitsText) };
}

/** The prefix with its host bits cleared. */
export function maskPrefix(p: Prefix): Prefix {
  const bytes = p.bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, p.bits - 8 * i));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  return { ...p, bytes };
}

/**
 * Remembered results of a canonical form. Every apply() spells out the whole
 * peer set twice, in the desired state and in the device's reply, and
 * parsing each prefix and endpoint again was about half of the CPU of adding
 * one peer to a 1 000-peer interface (bench:apply, docs/benchmarks.md). The
 * same strings come back on every apply, so a lookup replaces the parse.
 * Bounded: cleared when full (a 10 000-peer mesh has ~30 000 strings). Only
 * successes are kept; garbage is parsed (and refused) every time.
 */
const REMEMBERED_MAX = 65_536;
function remembered(f: (text: string) => string): (text: string) => string {
  const seen = new Map<string, string>();
  return (text) => {
    let out = seen.get(text);
    if (out === undefined) {
      out = f(text);
      if (seen.size >= REMEMBERED_MAX) seen.clear();
      seen.set(text, out);
    }
    return out;
  };
}

/**
 * Canonical text for WireGuard and ip(8) output, so the diff compares like
 * with like: apply() would otherwise "change" `fd00:0::1/128` into
 * `fd00::1/128` on every run. WireGuard stores allowed IPs masked
 * (10.0.0.5/24 reads back as 10.0.0.0/24), so canonicalCidr masks;
 * interface addresses are host addresses and keep their host bits.
 */
export const canonicalCidr = remembered(function canonicalCidr(text: string): string {
  const p = parsePrefix(text.trim());
  if (!p) throw new Error(`not an IP prefix: ${JSON.stringify(text)}`);
  return `${formatIp(maskPrefix(p).bytes)}/${p.bits}`;
});

/** "fd00:0::5/64" → "fd00::5/64": host bits kept, as `ip address` shows them. Throws on garbage. */
export function canonicalAddress(text: string): string {
  const p = parsePrefix(text.trim());
  if (!p) throw new Error(`not an interface address: ${JSON.stringify(text)}`);
  return `${formatIp(p.bytes)}/${p.bits}`;
}

/** Sorted canonical list, so two lists compare by value whatever the input order. */
export function canonicalCidrs(list: readonly string[]): string[] {
  return [...new Set(list.map(canonicalCidr))].sort();
}

export const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

// ---- endpoints -----------------------------------------------------------

export interface HostPort {
  /** Without brackets; for "[v6%zone]:p" the zone is still in it. */
  host: string;
  /** The host was in brackets. */
  bracketed: boolean;
  port: number;
}

/** 1-5 decimal digits, 1..65535; -1 otherwise. */
function scanPort(s: string, from: number): number {
  const len = s.length - from;
  if (len < 1 || len > 5) return -1;
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v >= 1 && v <= 65535 ? v : -1;
}

/**
 * "HOST:PORT" or "[HOST]:PORT" split at the last ":"; the host is not
 * checked (it may be a name). undefined when there is no valid port, or
 * brackets that do not close right before it.
 */
export function splitHostPort(s: string): HostPort | undefined {
  const colon = s.lastIndexOf(":");
  if (colon < 0) return undefined;
  const port = scanPort(s, colon + 1);
  if (port < 0) return undefined;
  if (s.charCodeAt(0) === 91 /* [ */) {
    if (s.charCodeAt(colon - 1) !== 93 /* ] */ || colon < 2) return undefined;
    return { host: s.slice(1, colon - 1), bracketed: true, port };
  }
  return { host: s.slice(0, colon), bracketed: false, port };
}

export function formatEndpoint(e: Endpoint): string {
  return familyOf(e.address) === "ipv6" ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/**
 * "1.2.3.4:5" or "[v6]:5" as the core's Endpoint: IPv6 canonical (zone
 * dropped), a v4-mapped IPv6 address unmapped. undefined for anything else,
 * including IPv6 without brackets and IPv4 inside them.
 */
export function parseEndpoint(s: string): Endpoint | undefined {
  const colon = s.lastIndexOf(":");
  if (colon < 1) return undefined;
  const port = scanPort(s, colon + 1);
  if (port < 0) return undefined;
  if (s.charCodeAt(0) !== 91 /* [ */) {
    return scanIpv4(s, 0, colon, undefined, 0) ? { address: s.slice(0, colon), port } : undefined;
  }
  if (s.charCodeAt(colon - 1) !== 93 /* ] */) return undefined;
  const b = new Uint8Array(16);
  if (!scanIpv6(s, 1, colon - 1, b)) return undefined;
  return { address: isMapped(b) ? `${b[12]}.${b[13]}.${b[14]}.${b[15]}` : formatIpv6(b), port };
}

/**
 * "1.2.3.4:5" or "[v6]:5" in canonical form, zone dropped, v4-mapped kept
 * as IPv6 (WireGuard's own spelling); throws on a host name (WireGuard's
 * UAPI wants literals).
 */
export const canonicalEndpoint = remembered(function canonicalEndpoint(text: string): string {
  const hp = splitHostPort(text.trim());
  const b = hp && (hp.bracketed ? tryParseIpv6(hp.host) : tryParseIpv4(hp.host));
  if (!hp || !b) throw new Error(`not an IP:port endpoint: ${JSON.stringify(text)}`);
  return b.length === 4 ? `${formatIpv4(b)}:${hp.port}` : `[${formatIpv6(b)}]:${hp.port}`;
});

export const endpointFamily = (s: string): Family => (s.startsWith("[") ? "ipv6" : "ipv4");

// ---- classes of addresses ---------------------------------------------------

/** Link-local and loopback addresses never make a path between hosts. */
export function isUsableAddress(address: string): boolean {
  const a = normalizeAddress(address);
  if (familyOf(a) === "ipv4") return !a.startsWith("127.") && !a.startsWith("169.254.") && a !== "0.0.0.0";
  const b = tryParseIpv6(a);
  if (!b) return false;
  const loopback = b.slice(0, 15).every((x) => x === 0) && b[15] === 1;
  const linkLocal = b[0] === 0xfe && ((b[1] ?? 0) & 0xc0) === 0x80;
  const unspecified = b.every((x) => x === 0);
  return !loopback && !linkLocal && !unspecified;
}

/** RFC 1918, CGNAT and ULA: addresses that only mean something behind the same router. */
export function isPrivateAddress(address: string): boolean {
  const a = normalizeAddress(address);
  if (familyOf(a) === "ipv6") return ((tryParseIpv6(a)?.[0] ?? 0) & 0xfe) === 0xfc;
  const [x = 0, y = 0] = (tryParseIpv4(a) ?? []) as number[];
  return (
    x === 10 ||
    (x === 172 && y >= 16 && y < 32) ||
    (x === 192 && y === 168) ||
    (x === 100 && y >= 64 && y < 128)
  );
}
