/**
 * Addresses and endpoints as text and bytes, without node:net (src/core is
 * pure). Endpoints are written the way WireGuard prints them:
 * "203.0.113.7:51820" and "[2001:db8::7]:51820".
 */
import type { Endpoint } from "./protocol.js";

export type Family = "ipv4" | "ipv6";

const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** 4 bytes, or undefined for anything that is not a dotted quad. */
export function tryParseIpv4(s: string): Uint8Array | undefined {
  const m = V4_RE.exec(s);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? Uint8Array.from(b) : undefined;
}

/** 16 bytes, or undefined; accepts "::", an embedded IPv4 tail and a %zone (dropped). */
export function tryParseIpv6(input: string): Uint8Array | undefined {
  let s = input;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  let tailV4: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tailV4 = tryParseIpv4(s.slice(lastColon + 1));
    if (!tailV4) return undefined;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const words = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    for (const w of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return undefined;
      out.push(parseInt(w, 16));
    }
    return out;
  };
  const head = words(halves[0] ?? "");
  const tail = halves.length === 2 ? words(halves[1] ?? "") : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || (halves.length === 2 && fill < 1)) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (tailV4) out.set(tailV4, 12);
  return out;
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

export const formatIpv4 = (b: Uint8Array): string => Array.from(b.subarray(0, 4)).join(".");

/** RFC 5952 text: lower case, longest run of zero words (length ≥ 2) as "::". */
export function formatIpv6(b: Uint8Array): string {
  const w = Array.from({ length: 8 }, (_, i) => ((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0));
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
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

export function familyOf(address: string): Family {
  return address.includes(":") ? "ipv6" : "ipv4";
}

/** "::ffff:1.2.3.4" (a dual-stack socket's view of IPv4) becomes "1.2.3.4"; IPv6 text is canonicalised. */
export function normalizeAddress(address: string): string {
  if (!address.includes(":")) return address;
  const b = tryParseIpv6(address);
  if (!b) return address;
  const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? Array.from(b.slice(12)).join(".") : formatIpv6(b);
}

export function formatEndpoint(e: Endpoint): string {
  return familyOf(e.address) === "ipv6" ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export function parseEndpoint(s: string): Endpoint | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m?.[1] || !m[2]) return undefined;
  const port = Number(m[2]);
  const address = normalizeAddress(m[1]);
  if (port < 1 || port > 65535) return undefined;
  if (!(tryParseIpv4(address) ?? tryParseIpv6(address))) return undefined;
  return { address, port };
}

export const endpointFamily = (s: string): Family => (s.startsWith("[") ? "ipv6" : "ipv4");

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
