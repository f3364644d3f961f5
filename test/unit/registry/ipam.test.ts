import { expect } from "chai";
import { ScopeError } from "../../../src/core/errors.js";
import { allocateIpv4, capacity4, ipv6For, parseCidr4 } from "../../../src/registry/ipam.js";

describe("registry/ipam", () => {
  const rows: { cidr: string; taken: string[]; want: string | undefined; why: string }[] = [
    {
      cidr: "10.88.0.0/16",
      taken: [],
      want: "10.88.0.2",
      why: "skips the network address and the reserved .1",
    },
    { cidr: "10.88.0.0/16", taken: ["10.88.0.2", "10.88.0.3"], want: "10.88.0.4", why: "lowest free" },
    {
      cidr: "10.88.0.0/16",
      taken: ["10.88.0.2", "10.88.0.4"],
      want: "10.88.0.3",
      why: "fills a hole left by a peer",
    },
    {
      cidr: "10.88.0.0/16",
      taken: ["10.88.0.1"],
      want: "10.88.0.2",
      why: "outside-the-pool addresses are ignored",
    },
    {
      cidr: "10.88.0.0/24",
      taken: range("10.88.0.", 2, 253),
      want: "10.88.0.254",
      why: "last before broadcast",
    },
    { cidr: "10.88.0.0/24", taken: range("10.88.0.", 2, 254), want: undefined, why: "full: never .255" },
    { cidr: "192.168.7.0/30", taken: [], want: "192.168.7.2", why: "/30 has one assignable address" },
    { cidr: "192.168.7.0/30", taken: ["192.168.7.2"], want: undefined, why: "/30 full" },
    {
      cidr: "10.0.254.0/23",
      taken: range("10.0.254.", 2, 255),
      want: "10.0.255.0",
      why: "x.x.x.0 is a host inside a /23",
    },
  ];
  for (const r of rows) {
    it(`${r.cidr} with ${r.taken.length} taken → ${r.want ?? "none"} (${r.why})`, () => {
      expect(allocateIpv4(r.cidr, new Set(r.taken))).to.equal(r.want);
    });
  }

  it("knows the capacity", () => {
    expect(capacity4(parseCidr4("10.88.0.0/24"))).to.equal(253);
    expect(capacity4(parseCidr4("10.88.0.0/30"))).to.equal(1);
  });

  for (const bad of [
    "10.88.0.1/16",
    "10.88.0.0/31",
    "10.0.0.0/7",
    "10.88.0.0",
    "10.88.0/16",
    "300.1.1.0/24",
    "10.88.0.0/16/1",
  ]) {
    it(`refuses ${bad}`, () => expect(() => parseCidr4(bad)).to.throw(ScopeError));
  }

  it("derives a stable IPv6 address from the peer id", () => {
    expect(ipv6For("fd00:88::/64", "0123456789abcdef")).to.equal("fd00:88::123:4567:89ab:cdef");
    expect(ipv6For("fd12:3456:789a::/48", "00000000000000ff")).to.equal("fd12:3456:789a::ff");
    expect(() => ipv6For("fd00::/80", "0123456789abcdef")).to.throw(ScopeError);
  });
});

function range(prefix: string, from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
}
