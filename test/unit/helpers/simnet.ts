/**
 * A simulated internet for unit tests: hosts, NAT routers with the RFC 4787
 * behaviours the lab builds with nftables (test/lab/nat.ts), IPv6 without
 * NAT behind a stateful firewall, black-holed IPv6, and a fixed one-way
 * latency. Deterministic: everything runs on the FakeClock.
 */
import { familyOf, formatEndpoint } from "../../../src/core/ip.js";
import type { Endpoint } from "../../../src/core/protocol.js";
import type { FakeClock } from "./fake-clock.js";

export type SimNatKind =
  "full-cone" | "address-restricted" | "port-restricted" | "port-shifting" | "symmetric";

export interface SimHostSpec {
  name: string;
  /** Absent: a public host. */
  nat?: SimNatKind;
  v6?: boolean;
  blackholeV6?: boolean;
}

type Receiver = (from: Endpoint, payload: unknown) => void;

interface Mapping {
  internal: string;
  /** Symmetric NATs map per destination. */
  dst: string | undefined;
  ext: number;
  sentTo: Set<string>;
  sentToAddr: Set<string>;
}

export class SimRouter {
  readonly mappings: Mapping[] = [];
  private nextRandomPort = 30_000;
  constructor(
    readonly kind: SimNatKind,
    readonly wan: string,
  ) {}

  out(internal: Endpoint, dst: Endpoint): Endpoint {
    const key = formatEndpoint(internal);
    const d = formatEndpoint(dst);
    const sym = this.kind === "symmetric";
    let m = this.mappings.find((x) => x.internal === key && (!sym || x.dst === d));
    if (!m) {
      let ext = internal.port;
      if (this.kind === "port-shifting") ext = internal.port ^ 0x400;
      if (sym) ext = this.nextRandomPort++;
      m = { internal: key, dst: sym ? d : undefined, ext, sentTo: new Set(), sentToAddr: new Set() };
      this.mappings.push(m);
    }
    m.sentTo.add(d);
    m.sentToAddr.add(dst.address);
    return { address: this.wan, port: m.ext };
  }

  in(extPort: number, src: Endpoint): Endpoint | undefined {
    const m = this.mappings.find((x) => x.ext === extPort);
    if (!m) return undefined;
    const ok =
      this.kind === "full-cone" ||
      (this.kind === "address-restricted"
        ? m.sentToAddr.has(src.address)
        : m.sentTo.has(formatEndpoint(src)));
    if (!ok) return undefined;
    const [address, port] = [
      m.internal.slice(0, m.internal.lastIndexOf(":")),
      Number(m.internal.slice(m.internal.lastIndexOf(":") + 1)),
    ];
    return { address, port };
  }
}

export class SimHost {
  readonly sockets = new Map<number, Receiver>();
  /** IPv6 firewall state (like the lab's routers): inbound only from where we sent. */
  readonly v6SentTo = new Set<string>();
  blackholeV6: boolean;
  constructor(
    readonly name: string,
    public v4: string,
    public v6: string | undefined,
    public router: SimRouter | undefined,
    blackholeV6: boolean,
  ) {
    this.blackholeV6 = blackholeV6;
  }

  addresses(): string[] {
    return [this.v4, ...(this.v6 ? [this.v6] : [])];
  }
}

export class SimNet {
  readonly hosts: SimHost[] = [];
  readonly routers: SimRouter[] = [];
  delivered = 0;
  dropped = 0;
  /** Datagrams for which this holds are lost on the way (a NAT dropping a path). */
  blocked: ((src: Endpoint, dst: Endpoint) => boolean) | undefined;
  /** Extra one-way delay of a datagram, on top of latencyMs (a far host). */
  delayMs: ((src: Endpoint, dst: Endpoint) => number) | undefined;

  constructor(
    readonly clock: FakeClock,
    readonly latencyMs = 5,
  ) {}

  addHost(spec: SimHostSpec): SimHost {
    const n = this.hosts.length + 10;
    let router: SimRouter | undefined;
    let v4 = `198.51.100.${n}`;
    const v6 = spec.v6 === false ? undefined : `2001:db8::2:${n.toString(16)}`;
    if (spec.nat) {
      router = new SimRouter(spec.nat, `203.0.113.${this.routers.length + 11}`);
      this.routers.push(router);
      v4 = `10.${this.routers.length}.0.${n}`;
    }
    const h = new SimHost(spec.name, v4, v6, router, spec.blackholeV6 ?? false);
    this.hosts.push(h);
    return h;
  }

  /** Moves a host behind a new NAT (or to a new public address): migration. */
  rehome(h: SimHost, nat: SimNatKind | undefined): void {
    const n = 100 + this.routers.length + this.hosts.indexOf(h);
    if (nat) {
      h.router = new SimRouter(nat, `203.0.113.${this.routers.length + 11}`);
      this.routers.push(h.router);
      h.v4 = `10.${this.routers.length}.0.${n}`;
    } else {
      h.router = undefined;
      h.v4 = `198.51.100.${n}`;
    }
    if (h.v6) h.v6 = `2001:db8::3:${n.toString(16)}`;
    h.v6SentTo.clear();
  }

  bind(h: SimHost, port: number, recv: Receiver): void {
    h.sockets.set(port, recv);
  }

  unbind(h: SimHost, port: number): void {
    h.sockets.delete(port);
  }

  /** The source endpoint the far side sees, creating NAT state as a real send would. */
  egress(h: SimHost, srcPort: number, dst: Endpoint): Endpoint | undefined {
    if (familyOf(dst.address) === "ipv6") {
      if (!h.v6 || h.blackholeV6) return undefined;
      h.v6SentTo.add(formatEndpoint(dst));
      return { address: h.v6, port: srcPort };
    }
    return h.router ? h.router.out({ address: h.v4, port: srcPort }, dst) : { address: h.v4, port: srcPort };
  }

  send(h: SimHost, srcPort: number, dst: Endpoint, payload: unknown): void {
    const src = this.egress(h, srcPort, dst);
    if (!src) {
      this.dropped++;
      return;
    }
    const delay = this.latencyMs + (this.delayMs?.(src, dst) ?? 0);
    this.clock.setTimer(delay, () => this.deliver(src, dst, payload));
  }

  private deliver(src: Endpoint, dst: Endpoint, payload: unknown): void {
    const target = this.blocked?.(src, dst) ? undefined : this.ingress(src, dst);
    const recv = target && target.host.sockets.get(target.port);
    if (!target || !recv) {
      this.dropped++;
      return;
    }
    this.delivered++;
    recv(src, payload);
  }

  private ingress(src: Endpoint, dst: Endpoint): { host: SimHost; port: number } | undefined {
    if (familyOf(dst.address) === "ipv6") {
      const host = this.hosts.find((h) => h.v6 === dst.address);
      if (!host || host.blackholeV6) return undefined;
      if (host.router && !host.v6SentTo.has(formatEndpoint(src))) return undefined;
      return { host, port: dst.port };
    }
    const pub = this.hosts.find((h) => !h.router && h.v4 === dst.address);
    if (pub) return { host: pub, port: dst.port };
    const router = this.routers.find((r) => r.wan === dst.address);
    const internal = router?.in(dst.port, src);
    const host = internal && this.hosts.find((h) => h.router === router && h.v4 === internal.address);
    return host && internal ? { host, port: internal.port } : undefined;
  }
}
