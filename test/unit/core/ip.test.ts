/**
 * src/core/ip.ts, the one IP module, against node:net (isIP/isIPv4/isIPv6)
 * and against deliberately slow references for the canonical forms (the
 * WHATWG URL parser's IPv6 serializer, BigInt masking), on thousands of
 * random and mutated strings. The seed is printed; rerun one with
 * IP_TEST_SEED=N.
 */
import { expect } from "chai";
import { randomInt } from "node:crypto";
import { isIP, isIPv4, isIPv6 } from "node:net";
import { Endpoint } from "../../../src/core/protocol.js";
import {
  canonicalCidr,
  canonicalEndpoint,
  formatIpv4,
  formatIpv6,
  ipVersion,
  isIpv4,
  isIpv6,
  normalizeAddress,
  parseEndpoint,
  parsePrefix,
  tryParseIpv4,
  tryParseIpv6,
} from "../../../src/core/ip.js";
import { prng } from "../prng.js";

const SEED = process.env.IP_TEST_SEED ? Number(process.env.IP_TEST_SEED) : randomInt(2 ** 31);
const COUNT = 4000;

class Gen {
  constructor(readonly r: () => number) {}
  int = (n: number): number => Math.floor(this.r() * n);
  pick = <T>(xs: readonly T[]): T => xs[this.int(xs.length)]!;
  chance = (p: number): boolean => this.r() < p;

  octet(): string {
    switch (this.int(10)) {
      case 0:
        return `0${this.int(100)}`; // leading zero: "07", "010"
      case 1:
        return String(256 + this.int(800)); // out of range
      case 2:
        return this.pick(["", "-1", "1a", " 1", "00", "000", "0x1", "+1", "1e2", "２"]);
      case 3:
        return String(this.int(10));
      default:
        return String(this.int(256));
    }
  }

  quad(): string {
    const n = this.chance(0.85) ? 4 : this.pick([1, 2, 3, 5]);
    return Array.from({ length: n }, () => this.octet()).join(".");
  }

  validQuad(): string {
    return Array.from({ length: 4 }, () => String(this.int(256))).join(".");
  }

  group(): string {
    const hex = "0123456789abcdefABCDEF";
    switch (this.int(12)) {
      case 0:
        return Array.from({ length: 5 }, () => this.pick([...hex])).join(""); // too long
      case 1:
        return this.pick(["g", "0g", "x", "", " 1", "-1", "ffff0"]);
      case 2:
        return "0";
      default:
        return Array.from({ length: 1 + this.int(4) }, () => this.pick([...hex])).join("");
    }
  }

  zone(): string {
    const chars = [..."abcxyz0129.-:_% /"];
    return this.chance(0.1) ? "" : Array.from({ length: 1 + this.int(6) }, () => this.pick(chars)).join("");
  }

  ipv6(): string {
    const tail = this.chance(0.2);
    let n = this.int(10) - (tail ? 2 : 0);
    if (n < 0) n = 0;
    const groups = Array.from({ length: n }, () => this.group());
    if (tail) groups.push(this.chance(0.7) ? this.validQuad() : this.quad());
    const gaps = this.pick([0, 1, 1, 1, 2]);
    for (let i = 0; i < gaps; i++) groups.splice(this.int(groups.length + 1), 0, "");
    let s = groups.join(":");
    if (s === "" || groups[0] === "") s = (s.startsWith(":") ? ":" : "") + s;
    if (groups.at(-1) === "" && !s.endsWith("::")) s += ":";
    if (this.chance(0.15)) s += `%${this.zone()}`;
    return s;
  }

  validIpv6(): string {
    const words = Array.from({ length: 8 }, () => (this.chance(0.4) ? 0 : this.int(65536)));
    if (this.chance(0.2)) {
      words.fill(0, 0, 5);
      words[5] = 0xffff;
    }
    return words.map((w) => w.toString(16)).join(":");
  }

  /** One random edit: delete, insert, duplicate or swap characters. */
  mutate(s: string): string {
    const alphabet = [..."0123456789abcdefABCDEFgG.:%/[]- _"];
    const i = this.int(s.length + 1);
    switch (this.int(4)) {
      case 0:
        return s.slice(0, i) + s.slice(i + 1);
      case 1:
        return s.slice(0, i) + this.pick(alphabet) + s.slice(i);
      case 2:
        return s.slice(0, i) + s.slice(i, i + 2) + s.slice(i);
      default:
        return s.length < 2 ? s : s.slice(0, i) + s.slice(i + 1, i + 2) + s.slice(i, i + 1) + s.slice(i + 2);
    }
  }

  address(): string {
    switch (this.int(6)) {
      case 0:
        return this.quad();
      case 1:
        return this.ipv6();
      case 2:
        return this.mutate(this.validQuad());
      case 3:
        return this.mutate(this.mutate(this.validIpv6()));
      case 4:
        return this.mutate(this.ipv6());
      default:
        return Array.from({ length: this.int(12) }, () => this.pick([..."0123456789af.:%"])).join("");
    }
  }
}

// ---- slow, obvious references ---------------------------------------------------

/** RFC 5952 text from an independent parser: WHATWG URL (no zones: strip it first). */
function refCanonical6(s: string): string {
  const noZone = s.includes("%") ? s.slice(0, s.indexOf("%")) : s;
  return new URL(`http://[${noZone}]/`).hostname.slice(1, -1);
}

/** Canonical IPv6 text → 128-bit value (canonical text has no v4 tail and at most one "::"). */
function refValue6(canonical: string): bigint {
  const [head, tail] = canonical.includes("::") ? canonical.split("::") : [canonical, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const words = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return words.reduce((v, w) => (v << 16n) | BigInt(parseInt(w, 16)), 0n);
}

const refText6 = (v: bigint): string =>
  refCanonical6(
    Array.from({ length: 8 }, (_, i) => ((v >> BigInt(16 * (7 - i))) & 0xffffn).toString(16)).join(":"),
  );

const refValue4 = (s: string): bigint => s.split(".").reduce((v, o) => (v << 8n) | BigInt(Number(o)), 0n);
const refText4 = (v: bigint): string =>
  Array.from({ length: 4 }, (_, i) => String((v >> BigInt(8 * (3 - i))) & 0xffn)).join(".");

/** Slow masking: clear the low (max - bits) bits. */
const mask = (v: bigint, bits: number, max: number): bigint =>
  (v >> BigInt(max - bits)) << BigInt(max - bits);

function refCidr(s: string): string | undefined {
  const slash = s.indexOf("/");
  const addr = slash < 0 ? s : s.slice(0, slash);
  const version = isIP(addr);
  if (version === 0 || addr.includes("%")) return undefined;
  const max = version === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > max) return undefined;
  const bits = Number(lenText);
  return version === 4
    ? `${refText4(mask(refValue4(addr), bits, 32))}/${bits}`
    : `${refText6(mask(refValue6(refCanonical6(addr)), bits, 128))}/${bits}`;
}

function refEndpoint(s: string): { address: string; port: number } | undefined {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[2] !== undefined) return isIPv4(m[2]) ? { address: m[2], port } : undefined;
  if (!isIPv6(m[1]!)) return undefined;
  const c = refCanonical6(m[1]!);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(c);
  if (!mapped) return { address: c, port };
  const v = (BigInt(parseInt(mapped[1]!, 16)) << 16n) | BigInt(parseInt(mapped[2]!, 16));
  return { address: refText4(v), port };
}

// ---- tests ---------------------------------------------------------------------

describe("core ip: addresses, node:net's rules", () => {
  const rows: [string, 0 | 4 | 6][] = [
    ["1.2.3.4", 4],
    ["0.0.0.0", 4],
    ["255.255.255.255", 4],
    ["010.1.1.1", 0], // leading zero: octal to inet_aton, refused by node:net, WireGuard, systemd
    ["1.2.3.00", 0],
    ["256.1.1.1", 0],
    ["1.2.3", 0],
    ["1.2.3.4.5", 0],
    [" 1.2.3.4", 0],
    ["::", 6],
    ["::1", 6],
    ["1::", 6],
    [":::", 0],
    [":1::", 0],
    ["1:2:3:4:5:6:7:8", 6],
    ["1:2:3:4:5:6:7:8:9", 0],
    ["1:2:3:4:5:6:7::", 6],
    ["1::2:3:4:5:6:7", 6],
    ["1:2:3:4:5:6:7:8::", 0],
    ["1::2::3", 0],
    ["12345::", 0],
    ["g::1", 0],
    ["::ffff:1.2.3.4", 6],
    ["::ffff:01.2.3.4", 0],
    ["1:2:3:4:5:6:1.2.3.4", 6],
    ["1:2:3:4:5:6::1.2.3.4", 0],
    ["::1.2.3.4:1", 0],
    ["fe80::1%eth0", 6],
    ["fe80::1%eth0.5:x", 6],
    ["fe80::1%", 0],
    ["fe80::1%a_b", 0],
    ["1.2.3.4%eth0", 0],
    ["FE80::A", 6],
  ];
  for (const [s, want] of rows) {
    it(`${JSON.stringify(s)} → ${want || "not an address"} (as node:net says)`, () => {
      expect(isIP(s), "node:net itself").to.equal(want);
      expect(ipVersion(s)).to.equal(want);
    });
  }

  it("formats canonical text (RFC 5952, first longest zero run)", () => {
    expect(formatIpv6(tryParseIpv6("2001:DB8:0:0:1:0:0:1")!)).to.equal("2001:db8::1:0:0:1");
    expect(formatIpv6(tryParseIpv6("::ffff:1.2.3.4")!)).to.equal("::ffff:102:304");
    expect(normalizeAddress("::ffff:1.2.3.4")).to.equal("1.2.3.4");
    expect(normalizeAddress("fe80:0::1%eth0")).to.equal("fe80::1");
  });

  it("parses endpoints as the core and WireGuard spell them", () => {
    expect(parseEndpoint("1.2.3.4:51820")).to.deep.equal({ address: "1.2.3.4", port: 51820 });
    expect(parseEndpoint("[2001:DB8::0:1]:5")).to.deep.equal({ address: "2001:db8::1", port: 5 });
    expect(parseEndpoint("[::ffff:1.2.3.4]:5")).to.deep.equal({ address: "1.2.3.4", port: 5 });
    for (const bad of ["010.1.1.1:5", "1.2.3.4:0", "1.2.3.4:65536", "::1:5", "[1.2.3.4]:5", "[::1]5", "h:5"])
      expect(parseEndpoint(bad), bad).to.equal(undefined);
    expect(canonicalEndpoint("[::ffff:1.2.3.4]:5")).to.equal("[::ffff:102:304]:5");
  });
});

describe(`core ip: randomized against node:net and slow references (seed ${SEED}; rerun with IP_TEST_SEED=${SEED})`, function () {
  // Thousands of cases: ~0.5 s on an idle host, several times that on a busy one.
  this.timeout(20_000);
  before(() => console.log(`      ip random seed: ${SEED}`));

  it(`${COUNT * 4} random and mutated address strings: same verdict as isIP/isIPv4/isIPv6`, () => {
    const g = new Gen(prng(SEED));
    const seen = { 4: 0, 6: 0, 0: 0 };
    for (let i = 0; i < COUNT * 4; i++) {
      const s = g.address();
      const want = isIP(s) as 0 | 4 | 6;
      seen[want]++;
      expect(ipVersion(s), JSON.stringify(s)).to.equal(want);
      expect(isIpv4(s), JSON.stringify(s)).to.equal(isIPv4(s));
      expect(isIpv6(s), JSON.stringify(s)).to.equal(isIPv6(s));
      expect(tryParseIpv4(s) !== undefined, `tryParseIpv4 ${JSON.stringify(s)}`).to.equal(isIPv4(s));
      expect(tryParseIpv6(s) !== undefined, `tryParseIpv6 ${JSON.stringify(s)}`).to.equal(isIPv6(s));
    }
    // The generator must produce all three outcomes in quantity, or the test proves little.
    expect(seen[4]).to.be.above(COUNT / 10);
    expect(seen[6]).to.be.above(COUNT / 10);
    expect(seen[0]).to.be.above(COUNT);
  });

  it(`${COUNT * 4} strings: the protocol's Endpoint schema (zod, for docs/protocol.md) takes the same addresses, zones aside`, () => {
    const g = new Gen(prng(SEED + 4));
    for (let i = 0; i < COUNT * 4; i++) {
      const s = g.address();
      if (s.includes("%")) continue; // a zone means nothing on the wire; zod refuses it
      const zod = Endpoint.safeParse({ address: s, port: 1 }).success;
      expect(zod, JSON.stringify(s)).to.equal(ipVersion(s) !== 0);
    }
  });

  it(`${COUNT} valid and near-valid addresses: bytes and canonical text agree with the slow reference`, () => {
    const g = new Gen(prng(SEED + 1));
    for (let i = 0; i < COUNT; i++) {
      const s = g.chance(0.5) ? g.validIpv6() : g.chance(0.5) ? g.ipv6() : g.validQuad();
      if (isIPv4(s)) expect(formatIpv4(tryParseIpv4(s)!), s).to.equal(s);
      else if (isIPv6(s)) expect(formatIpv6(tryParseIpv6(s)!), s).to.equal(refCanonical6(s));
    }
  });

  it(`${COUNT} prefixes: validity and masked canonical form agree with BigInt masking`, () => {
    const g = new Gen(prng(SEED + 2));
    for (let i = 0; i < COUNT; i++) {
      const addr = g.chance(0.5) ? g.validQuad() : g.chance(0.6) ? g.validIpv6() : g.address();
      const len = g.pick(["", "/", `/${g.int(33)}`, `/${g.int(129)}`, `/${g.int(200)}`, "/0", "/024", "/x"]);
      const s = addr + len;
      expect(parsePrefix(s) !== undefined, JSON.stringify(s)).to.equal(refCidr(s) !== undefined);
      const want = refCidr(s.trim()); // canonicalCidr ignores surrounding blanks
      if (want === undefined) expect(() => canonicalCidr(s), JSON.stringify(s)).to.throw();
      else expect(canonicalCidr(s), JSON.stringify(s)).to.equal(want);
    }
  });

  it(`${COUNT * 2} endpoints: parseEndpoint agrees with a regex + node:net reference`, () => {
    const g = new Gen(prng(SEED + 3));
    for (let i = 0; i < COUNT * 2; i++) {
      const addr = g.chance(0.3) ? g.validQuad() : g.chance(0.3) ? g.validIpv6() : g.address();
      const port = g.pick(["51820", "1", "65535", "0", "65536", "", "0080", "123456", "x"]);
      const host = g.chance(0.6) === addr.includes(":") ? `[${addr}]` : addr;
      let s = `${host}:${port}`;
      if (g.chance(0.1)) s = g.mutate(s);
      const want = refEndpoint(s);
      expect(parseEndpoint(s), JSON.stringify(s)).to.deep.equal(want);
    }
  });
});
