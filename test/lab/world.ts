// A lab world described as data, before anything runs (like tailscale's
// natlab vnet.Config). `planWorld` turns it into names and addresses with no
// I/O, so the plan can be read, logged and unit-tested on its own.
//
// Shape of the built world:
//
//   host ── LAN bridge "lan" ── router ──"wan"──┐
//   host ── LAN bridge "lan" ── router ──"wan"──┤ bridge "inet" in namespace sl-inet
//   public host ────────────────────────"eth0"──┘ (the fake internet, routes v4 and v6)
//
// Only documentation ranges are used on the fake internet (203.0.113.0/24 for
// router WANs, 198.51.100.0/24 for public hosts, 2001:db8::/32 for IPv6), and
// 10.x/24 inside LANs, so nothing the lab sends can match a real address.

import { NAT_KINDS, type NatKind } from "./nat.js";

export interface RouterSpec {
  /** Short name: letters, digits and "-", at most 10 chars (namespace names are limited to 15). */
  readonly name: string;
  readonly nat: NatKind;
  /** Route IPv6 for the LAN (no NAT, stateful firewall). Default true. */
  readonly v6?: boolean;
  /** Conntrack UDP timeouts in seconds; the kernel defaults are 30 (unreplied) and 120 (stream). */
  readonly udpTimeouts?: { readonly unreplied: number; readonly stream: number };
}

export interface HostSpec {
  /** Short name, same rules as RouterSpec.name. */
  readonly name: string;
  /** Router the host sits behind; absent = directly on the internet with a public address. */
  readonly router?: string;
  /** Give the host IPv6 (only if its router routes IPv6 too). Default true. IPv4 is always on. */
  readonly v6?: boolean;
  /** Start with the host's IPv6 dropped on its upstream (see Lab.blackholeV6). Default false. */
  readonly blackholeV6?: boolean;
}

export interface World {
  readonly routers: readonly RouterSpec[];
  readonly hosts: readonly HostSpec[];
}

/** Every namespace, interface and UAPI socket the lab creates starts with this. */
export const LAB_PREFIX = "sl-";
export const INTERNET_NS = `${LAB_PREFIX}inet`;
/** Interface names the harness uses inside namespaces. */
export const IF = { wan: "wan", lan: "lan", inet: "inet", host: "eth0" } as const;

export const INTERNET_V4 = { routers: "203.0.113", publics: "198.51.100" } as const;
export const INTERNET_V6_PREFIX = "2001:db8::";

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,9}$/;

/** Addresses of one side of a link; v6 is absent when the link is IPv4-only. */
export interface LinkAddrs {
  readonly v4: string;
  readonly v4Prefix: number;
  readonly v4Gateway: string;
  readonly v6?: string;
  readonly v6Gateway?: string;
}

export interface RouterPlan {
  readonly spec: RouterSpec;
  readonly index: number;
  readonly ns: string;
  readonly v6: boolean;
  readonly wan: LinkAddrs;
  /** LAN side: the router's own addresses and the prefixes it serves. */
  readonly lan: {
    readonly v4: string;
    readonly v4Net: string;
    readonly v6?: string;
    readonly v6Net?: string;
  };
  /** Port name on the internet bridge. */
  readonly inetPort: string;
}

export interface HostPlan {
  readonly spec: HostSpec;
  readonly index: number;
  readonly ns: string;
  /** Port name on the internet bridge, used while the host is public. */
  readonly inetPort: string;
  /** Port name on a router's LAN bridge, used while the host is behind a router. */
  readonly lanPort: string;
}

export interface WorldPlan {
  readonly routers: ReadonlyMap<string, RouterPlan>;
  readonly hosts: ReadonlyMap<string, HostPlan>;
}

export class WorldError extends Error {
  override readonly name = "WorldError";
}

/** Validates names and references and assigns namespaces. Throws WorldError. */
export function planWorld(world: World): WorldPlan {
  const seen = new Set<string>();
  const checkName = (kind: string, name: string): void => {
    if (!NAME_RE.test(name)) throw new WorldError(`${kind} name "${name}" must match ${NAME_RE}`);
    if (seen.has(name)) throw new WorldError(`duplicate name "${name}"`);
    seen.add(name);
  };
  if (world.routers.length > 200 || world.hosts.length > 200)
    throw new WorldError("at most 200 routers/hosts");

  const routers = new Map<string, RouterPlan>();
  world.routers.forEach((spec, index) => {
    checkName("router", spec.name);
    if (!(spec.nat in NAT_KINDS)) throw new WorldError(`router ${spec.name}: unknown NAT kind "${spec.nat}"`);
    const v6 = spec.v6 !== false;
    const n = index + 1;
    routers.set(spec.name, {
      spec,
      index,
      ns: `${LAB_PREFIX}r-${spec.name}`,
      v6,
      wan: {
        v4: `${INTERNET_V4.routers}.${n + 10}`,
        v4Prefix: 24,
        v4Gateway: `${INTERNET_V4.routers}.1`,
        ...(v6 ? { v6: `${INTERNET_V6_PREFIX}1:${hex(n)}`, v6Gateway: `${INTERNET_V6_PREFIX}1` } : {}),
      },
      lan: {
        v4: `10.${n}.0.1`,
        v4Net: `10.${n}.0.0/24`,
        ...(v6 ? { v6: `${lanV6Prefix(n)}1`, v6Net: `${lanV6Prefix(n)}/64` } : {}),
      },
      inetPort: `i-r-${spec.name}`,
    });
  });

  const hosts = new Map<string, HostPlan>();
  world.hosts.forEach((spec, index) => {
    checkName("host", spec.name);
    if (spec.router !== undefined && !routers.has(spec.router)) {
      throw new WorldError(`host ${spec.name}: unknown router "${spec.router}"`);
    }
    hosts.set(spec.name, {
      spec,
      index,
      ns: `${LAB_PREFIX}h-${spec.name}`,
      inetPort: `i-h-${spec.name}`,
      lanPort: `l-${spec.name}`,
    });
  });
  for (const r of routers.values())
    checkOneToOne(
      r,
      [...hosts.values()].filter((h) => h.spec.router === r.spec.name),
    );
  return { routers, hosts };
}

/** 1:1 NAT kinds map the whole public address to a single LAN host. */
export function checkOneToOne(router: RouterPlan, behind: readonly HostPlan[]): void {
  if (NAT_KINDS[router.spec.nat].oneToOne && behind.length > 1) {
    throw new WorldError(
      `router ${router.spec.name} (${router.spec.nat}) is 1:1 NAT: at most one host behind it`,
    );
  }
}

/**
 * A host's addresses when attached to `router` (undefined = public). Derived
 * from the host's index, so a host moved between routers keeps its suffix and
 * a test can predict every address.
 */
export function hostAddrs(host: HostPlan, router: RouterPlan | undefined): LinkAddrs {
  const suffix = host.index + 10;
  const wantV6 = host.spec.v6 !== false;
  if (router === undefined) {
    return {
      v4: `${INTERNET_V4.publics}.${suffix}`,
      v4Prefix: 24,
      v4Gateway: `${INTERNET_V4.publics}.1`,
      ...(wantV6 ? { v6: `${INTERNET_V6_PREFIX}2:${hex(suffix)}`, v6Gateway: `${INTERNET_V6_PREFIX}1` } : {}),
    };
  }
  const n = router.index + 1;
  return {
    v4: `10.${n}.0.${suffix}`,
    v4Prefix: 24,
    v4Gateway: router.lan.v4,
    ...(wantV6 && router.v6 ? { v6: `${lanV6Prefix(n)}${hex(suffix)}`, v6Gateway: router.lan.v6 } : {}),
  };
}

/** Addresses of the internet namespace on its bridge (gateways for everyone). */
export const INTERNET_ADDRS = {
  v4: [`${INTERNET_V4.routers}.1/24`, `${INTERNET_V4.publics}.1/24`],
  v6: `${INTERNET_V6_PREFIX}1/64`,
} as const;

function lanV6Prefix(n: number): string {
  return `2001:db8:${hex(n)}::`;
}

function hex(n: number): string {
  return n.toString(16);
}
