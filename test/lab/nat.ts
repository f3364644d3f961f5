// NAT kinds as data, and the nftables rule sets that make a router behave
// like each kind. Rule text is produced by pure functions; lab.ts loads it
// with `nft -f -`, always as one whole rule set (`flush ruleset` first), so
// re-applying after a host moves is atomic and idempotent.
//
// Every router, whatever its kind:
//  - drops unsolicited inbound silently (policy drop on input and forward, so
//    no ICMP port-unreachable ever tells a prober anything);
//  - routes IPv6 without NAT behind a home-router-like stateful firewall that
//    admits only established/related inbound;
//  - can black-hole chosen IPv6 addresses in both directions (set @bh6).

/** RFC 4787 behaviour of a NAT, plus what the lab test asserts about it. */
export interface NatBehaviour {
  /** Common name (the union key is the lab's name). */
  readonly commonName: string;
  readonly mapping: "endpoint-independent" | "address-and-port-dependent";
  readonly filtering: "endpoint-independent" | "address-dependent" | "address-and-port-dependent";
  /** Public source port equals the LAN source port (while that port is free). */
  readonly preservesPort: boolean;
  /** The public address belongs to a single LAN host (static 1:1 DNAT). */
  readonly oneToOne: boolean;
}

export type NatKind = "full-cone" | "address-restricted" | "port-restricted" | "port-shifting" | "symmetric";

export const NAT_KINDS: Readonly<Record<NatKind, NatBehaviour>> = {
  "full-cone": {
    commonName: "full cone (1:1 NAT)",
    mapping: "endpoint-independent",
    filtering: "endpoint-independent",
    preservesPort: true,
    oneToOne: true,
  },
  "address-restricted": {
    commonName: "address-restricted cone",
    mapping: "endpoint-independent",
    filtering: "address-dependent",
    preservesPort: true,
    oneToOne: true,
  },
  "port-restricted": {
    commonName: "port-restricted cone (Linux masquerade)",
    mapping: "endpoint-independent",
    filtering: "address-and-port-dependent",
    preservesPort: true,
    oneToOne: false,
  },
  "port-shifting": {
    commonName: "port-restricted cone without port preservation",
    mapping: "endpoint-independent",
    filtering: "address-and-port-dependent",
    preservesPort: false,
    oneToOne: false,
  },
  symmetric: {
    commonName: "symmetric (masquerade fully-random)",
    mapping: "address-and-port-dependent",
    filtering: "address-and-port-dependent",
    preservesPort: false,
    oneToOne: false,
  },
};

/** The port-shifting NAT maps UDP source port p to p XOR this, i.e. ±1024: static and reversible. */
export const PORT_SHIFT_XOR = 0x400;

export function shiftedPort(port: number): number {
  return port ^ PORT_SHIFT_XOR;
}

/**
 * How long an address-restricted router remembers a destination it may take
 * inbound from; matches the kernel's default established-UDP conntrack timeout.
 */
const SEEN_TIMEOUT_S = 120;

export interface RouterRules {
  readonly kind: NatKind;
  readonly wanIf: string;
  readonly lanIf: string;
  readonly wanV4: string;
  readonly lanV4Net: string;
  /** LAN host of a 1:1 kind; undefined when nobody is behind the router. */
  readonly oneToOneHost?: string;
  readonly blackholedV6: readonly string[];
}

/** The whole nft rule set for one router namespace. */
export function routerRuleset(r: RouterRules): string {
  const inbound = inboundForward(r);
  return [
    "flush ruleset",
    "table inet lab {",
    bh6Set(r.blackholedV6),
    r.kind === "address-restricted"
      ? `  set seen4 { type ipv4_addr; flags dynamic, timeout; timeout ${SEEN_TIMEOUT_S}s; }`
      : "",
    "  chain input {",
    "    type filter hook input priority filter; policy drop;",
    '    iif "lo" accept',
    "    ct state established,related accept",
    `    iifname "${r.lanIf}" accept`,
    // Neighbour discovery must work on the WAN or IPv6 routing stops.
    "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept",
    "  }",
    "  chain forward {",
    "    type filter hook forward priority filter; policy drop;",
    "    ip6 saddr @bh6 drop",
    "    ip6 daddr @bh6 drop",
    // Refreshed on every outbound packet, so it must come before the
    // established shortcut.
    r.kind === "address-restricted"
      ? `    iifname "${r.lanIf}" oifname "${r.wanIf}" update @seen4 { ip daddr }`
      : "",
    "    ct state established,related accept",
    `    iifname "${r.lanIf}" oifname "${r.wanIf}" accept`,
    ...inbound.map((l) => `    ${l}`),
    "  }",
    "}",
    "table ip nat {",
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    ...natPrerouting(r).map((l) => `    ${l}`),
    "  }",
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    ...natPostrouting(r).map((l) => `    ${l}`),
    "  }",
    "}",
    "",
  ]
    .filter((l) => l !== "")
    .join("\n");
}

/**
 * The internet namespace forwards everything; it only black-holes public
 * hosts' IPv6. Public hosts and router WANs share one IPv6 /64 on the bridge,
 * so their traffic is bridged, not routed: the bridge family filters that.
 */
export function internetRuleset(blackholedV6: readonly string[]): string {
  return [
    "flush ruleset",
    // The same filter for routed (inet) and bridged (bridge) IPv6 traffic.
    ...["inet", "bridge"].flatMap((family) => [
      `table ${family} lab {`,
      bh6Set(blackholedV6),
      "  chain forward {",
      "    type filter hook forward priority filter; policy accept;",
      "    ip6 saddr @bh6 drop",
      "    ip6 daddr @bh6 drop",
      "  }",
      "}",
    ]),
    "",
  ].join("\n");
}

/** nft commands that add or remove one address from every @bh6 set of a namespace. */
export function bh6Update(families: readonly ("inet" | "bridge")[], addr: string, on: boolean): string {
  // `delete` of a missing element fails the batch; adding first makes both idempotent.
  const ops = on ? ["add"] : ["add", "delete"];
  return families.flatMap((f) => ops.map((op) => `${op} element ${f} lab bh6 { ${addr} }`)).join("\n");
}

function bh6Set(addrs: readonly string[]): string {
  const elements = addrs.length > 0 ? ` elements = { ${addrs.join(", ")} };` : "";
  return `  set bh6 { type ipv6_addr;${elements} }`;
}

function inboundForward(r: RouterRules): string[] {
  const dnatted = `iifname "${r.wanIf}" oifname "${r.lanIf}" ct status dnat`;
  switch (r.kind) {
    case "full-cone":
      return [`${dnatted} accept`];
    case "address-restricted":
      return [`${dnatted} ip saddr @seen4 accept`];
    case "port-restricted":
    case "port-shifting":
    case "symmetric":
      // Only replies to existing mappings (conntrack) come in.
      return [];
  }
}

function natPrerouting(r: RouterRules): string[] {
  if (!NAT_KINDS[r.kind].oneToOne || r.oneToOneHost === undefined) return [];
  return [`iifname "${r.wanIf}" ip daddr ${r.wanV4} dnat ip to ${r.oneToOneHost}`];
}

function natPostrouting(r: RouterRules): string[] {
  const out = `oifname "${r.wanIf}" ip saddr ${r.lanV4Net}`;
  switch (r.kind) {
    case "full-cone":
    case "address-restricted":
      return r.oneToOneHost === undefined
        ? []
        : [`oifname "${r.wanIf}" ip saddr ${r.oneToOneHost} snat ip to ${r.wanV4}`];
    case "port-restricted":
      // Linux keeps the source port when the resulting tuple is free, and
      // reuses it for every destination: endpoint-independent in practice.
      return [`${out} masquerade`];
    case "port-shifting":
      return [
        `${out} udp sport != 0 snat ip to ${r.wanV4} : udp sport ^ ${PORT_SHIFT_XOR}`,
        `${out} masquerade`,
      ];
    case "symmetric":
      return [`${out} masquerade fully-random`];
  }
}
