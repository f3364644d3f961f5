/**
 * Canonical text for IP addresses, prefixes and endpoints.
 *
 * The diff compares what the core asks for with what WireGuard and `ip`
 * print. Both sides must be spelled the same or apply() would "change"
 * `fd00:0::1/128` into `fd00::1/128` on every run and never be idempotent.
 * WireGuard stores allowed IPs masked (10.0.0.5/24 reads back as
 * 10.0.0.0/24), so prefixes are masked here too; interface addresses are
 * host addresses and keep their host bits.
 */

/** 4 or 16 bytes, or undefined when text is not a literal address. */
export function parseIp(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIp6(text) : parseIp4(text);
}

function parseIp4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    // Decimal only: "010" would be octal to inet_aton and is refused by WireGuard.
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i]!)) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIp6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseIp4(item);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
        out.push(parseInt(item, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** RFC 5952 text: lowercase, longest run of two or more zero groups as "::". */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

interface Prefix {
  bytes: Uint8Array;
  bits: number;
}

function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf("/");
  const bytes = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  if (slash < 0) return { bytes, bits: max };
  const bitsText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) return undefined;
  return { bytes, bits: Number(bitsText) };
}

/**
 * Remembered results of the canonical forms. Every apply() spells out the
 * whole peer set twice, in the desired state and in the UAPI get reply, and
 * parsing each prefix and endpoint again was about half of the CPU of
 * adding one peer to a 1 000-peer interface (bench:apply, docs/benchmarks.md).
 * The same strings come back on every apply, so a lookup replaces the parse.
 * Bounded: cleared when full (a 10 000-peer mesh has ~30 000 strings).
 * Only successes are kept; garbage is parsed (and refused) every time.
 */
const MEMO_MAX = 65_536;
function memo(f: (text: string) => string): (text: string) => string {
  const seen = new Map<string, string>();
  return (text) => {
    let out = seen.get(text);
    if (out === undefined) {
      out = f(text);
      if (seen.size >= MEMO_MAX) seen.clear();
      seen.set(text, out);
    }
    return out;
  };
}

/** "10.0.0.5/24" → "10.0.0.0/24"; a bare address gets its full length. Throws on garbage. */
export const canonicalCidr = memo(function canonicalCidr(text: string): string {
  const p = parsePrefix(text.trim());
  if (!p) throw new Error(`not an IP prefix: ${JSON.stringify(text)}`);
  const masked = p.bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, p.bits - 8 * i));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  return `${formatIp(masked)}/${p.bits}`;
});

/** "fd00:0::5/64" → "fd00::5/64": host bits kept, as `ip address` shows them. */
export function canonicalAddress(text: string): string {
  const p = parsePrefix(text.trim());
  if (!p) throw new Error(`not an interface address: ${JSON.stringify(text)}`);
  return `${formatIp(p.bytes)}/${p.bits}`;
}

/** "1.2.3.4:5" or "[v6]:5" in canonical form; throws on a host name (WireGuard's UAPI wants literals). */
export const canonicalEndpoint = memo(function canonicalEndpoint(text: string): string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2];
  const bytes = host === undefined ? undefined : parseIp(host.replace(/%.*$/, ""));
  const port = Number(m?.[3]);
  if (!bytes || !(port > 0 && port < 65536))
    throw new Error(`not an IP:port endpoint: ${JSON.stringify(text)}`);
  return bytes.length === 4 ? `${formatIp(bytes)}:${port}` : `[${formatIp(bytes)}]:${port}`;
});

/** Sorted canonical list, so two lists compare by value whatever the input order. */
export function canonicalCidrs(list: readonly string[]): string[] {
  return [...new Set(list.map(canonicalCidr))].sort();
}

export const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);
