/**
 * Address assignment for tunnel addresses, pure (the store calls it inside
 * its join transaction with the addresses already taken).
 *
 * IPv4: the lowest free address of the network CIDR, skipping the network
 * address, the broadcast address and the first host (x.x.x.1), which stays
 * reserved for a hub or gateway an admin may want at a well-known address.
 * IPv6 (optional ULA prefix of /64 or shorter): the prefix followed by the
 * 64-bit peer id, so it needs no table and is the same for the peer forever.
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from "../core/ip.js";
import { ScopeError } from "../core/errors.js";

/** /8 keeps tables sane; /30 leaves one assignable address after the reservations. */
export const MIN_PREFIX4 = 8;
export const MAX_PREFIX4 = 30;
export const MAX_PREFIX6 = 64;
/** Host offsets that are never assigned: network address and the reserved first host. */
const RESERVED_LOW = 2;

export interface Cidr4 {
  base: number;
  prefix: number;
}

const toUint = (b: Uint8Array): number =>
  (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0;
const fromUint = (n: number): string =>
  formatIpv4(Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255));

function splitCidr(cidr: string): [string, number] {
  const [addr, len, extra] = cidr.split("/");
  if (addr === undefined || len === undefined || extra !== undefined || !/^[0-9]{1,3}$/.test(len)) {
    throw new ScopeError("bad_request", `not a CIDR: ${cidr}`);
  }
  return [addr, Number(len)];
}

/** Parses and checks an IPv4 network CIDR: prefix within limits, no host bits set. */
export function parseCidr4(cidr: string): Cidr4 {
  const [addr, prefix] = splitCidr(cidr);
  let base: number;
  try {
    base = toUint(parseIpv4(addr));
  } catch {
    throw new ScopeError("bad_request", `not an IPv4 CIDR: ${cidr}`);
  }
  if (prefix < MIN_PREFIX4 || prefix > MAX_PREFIX4) {
    throw new ScopeError(
      "bad_request",
      `cidr: prefix must be /${MIN_PREFIX4} to /${MAX_PREFIX4}, got /${prefix}`,
    );
  }
  if ((base & hostMask(prefix)) !== 0) {
    throw new ScopeError(
      "bad_request",
      `cidr: ${cidr} has host bits set; use ${fromUint(base & ~hostMask(prefix))}/${prefix}`,
    );
  }
  return { base, prefix };
}

const hostMask = (prefix: number): number => (prefix === 0 ? 0xffffffff : (1 << (32 - prefix)) - 1) >>> 0;

/** Checks an IPv6 prefix for assignment by peer id. */
export function checkCidr6(cidr6: string): void {
  const [addr, prefix] = splitCidr(cidr6);
  let bytes: Uint8Array;
  try {
    bytes = parseIpv6(addr);
  } catch {
    throw new ScopeError("bad_request", `not an IPv6 CIDR: ${cidr6}`);
  }
  if (prefix < 8 || prefix > MAX_PREFIX6) {
    throw new ScopeError("bad_request", `cidr6: prefix must be /8 to /${MAX_PREFIX6}, got /${prefix}`);
  }
  if (bytes.subarray(8).some((x) => x !== 0)) {
    throw new ScopeError("bad_request", `cidr6: ${cidr6} has bits set in the interface-id half`);
  }
}

/** Number of addresses assignable to peers. */
export const capacity4 = (c: Cidr4): number => 2 ** (32 - c.prefix) - RESERVED_LOW - 1;

/**
 * Lowest free address, or undefined when the network is full.
 * taken holds dotted quads; it may contain addresses outside the CIDR (ignored).
 */
export function allocateIpv4(cidr: string, taken: ReadonlySet<string>): string | undefined {
  const c = parseCidr4(cidr);
  const last = c.base + hostMask(c.prefix) - 1; // before broadcast
  for (let n = c.base + RESERVED_LOW; n <= last; n++) {
    const a = fromUint(n);
    if (!taken.has(a)) return a;
  }
  return undefined;
}

/** The peer's IPv6 address: prefix bits, then the peer id (16 hex digits = 64 bits) as interface id. */
export function ipv6For(cidr6: string, peerId: string): string {
  checkCidr6(cidr6);
  if (!/^[0-9a-f]{16}$/.test(peerId)) throw new RangeError("peer id must be 16 hex digits");
  const bytes = parseIpv6(splitCidr(cidr6)[0]);
  bytes.set(Buffer.from(peerId, "hex"), 8);
  return formatIpv6(bytes);
}
