/**
 * Value rules of systemd.netdev(5) [WireGuard]/[WireGuardPeer] as systemd
 * itself applies them (src/network/netdev/wireguard.c), so a file Scope
 * accepts is a file networkd accepts. Pure: no I/O.
 *
 * Each check returns an error message or undefined, so parse.ts can prefix
 * "file:line:" in one place. Addresses are checked by src/core/ip.ts, the
 * one IP module (node:net's rules: no leading zeros in IPv4).
 */
import { ipVersion, isIpv6, parsePrefix } from "../src/core/ip.js";
import { checkInterfaceName } from "../src/core/names.js";

/**
 * A WireGuard key is 32 bytes in standard base64: 43 significant characters
 * and one "=". The 43rd character carries only 4 bits, so it must be one
 * whose two low bits are zero; anything else decodes to a different key.
 */
const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export const isWgKey = (s: string): boolean => WG_KEY.test(s);

export function checkKey(s: string): string | undefined {
  if (isWgKey(s)) return undefined;
  if (s.startsWith("@"))
    return "systemd credentials (@name) are not supported here: Scope writes keys to files";
  return "not a WireGuard key (44 characters of base64 encoding 32 bytes)";
}

/** Strict decimal: systemd's safe_atou rejects signs, spaces and hex for these keys. */
export function parseUint(s: string, min: number, max: number): number | undefined {
  if (!/^[0-9]{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= min && n <= max ? n : undefined;
}

export const UINT32_MAX = 4294967295;

export const parsePort = (s: string): number | undefined => parseUint(s, 1, 65535);

/**
 * "10.0.0.1/24", "fd00::/64", or a bare address (full-length prefix), as
 * systemd's in_addr_prefix_from_string_auto accepts them, read by the one IP
 * module (src/core/ip.ts: parsePrefix). Host bits are allowed, as in
 * systemd: the kernel masks them when it stores the route.
 */
export function checkCidr(s: string): string | undefined {
  return parsePrefix(s) ? undefined : `"${s}" is not an IPv4 or IPv6 address with an optional /prefix`;
}

/**
 * A DNS name as systemd's dns_name_is_valid sees it for our purpose: dot
 * separated labels of at most 63 bytes, 253 in all. systemd is laxer about
 * characters; Scope only ever writes IP literals, so this errs strict. A
 * name whose last label is all digits is no name (RFC 3696 §2): it is an
 * address the IP module refused (e.g. "010.1.1.1", which getaddrinfo would
 * read as octal), not something to resolve.
 */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const isHostname = (h: string): boolean =>
  h.length > 0 &&
  !/(^|\.)[0-9]+\.?$/.test(h) &&
  h.length <= 253 &&
  h
    .replace(/\.$/, "")
    .split(".")
    .every((l) => LABEL.test(l));

export type EndpointHost = { kind: "ip"; family: 4 | 6 } | { kind: "name" };

/** "192.0.2.1:51820", "[2001:db8::1]:51820" (optionally "%zone" inside the brackets), "vpn.example.com:51820". */
export function checkEndpoint(s: string): string | undefined {
  const colon = s.lastIndexOf(":");
  if (colon < 0) return `endpoint "${s}" has no :port`;
  const host = s.slice(0, colon);
  if (parsePort(s.slice(colon + 1)) === undefined) return `endpoint "${s}" has no valid port (1..65535)`;
  if (host.startsWith("[") && host.endsWith("]")) {
    const inner = host.slice(1, -1);
    return isIpv6(inner) ? undefined : `endpoint "${s}": "${inner}" is not an IPv6 address`;
  }
  const version = ipVersion(host);
  if (version === 6) return `endpoint "${s}": an IPv6 address must be in brackets, e.g. [2001:db8::1]:51820`;
  if (version === 4 || isHostname(host)) return undefined;
  return `endpoint "${s}": "${host}" is neither an IP address nor a host name`;
}

/** Interface names: the one rule of src/core/names.ts (IFNAMSIZ, kernel and systemd characters). */
export const checkIfname = checkInterfaceName;
