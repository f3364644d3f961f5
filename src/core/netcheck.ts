/**
 * Netcheck as a fact sheet (tailscale's netcheck.Report): the daemon sends
 * reflector requests from the probe socket to the registry's two reflector
 * ports over each family and hands the verified answers here; this module
 * only reasons about them. The CLI prints the report; the engine turns it
 * into NatInfo and reflexive candidates.
 */
import { familyOf, formatEndpoint, normalizeAddress } from "./ip.js";
import type { Candidate, Endpoint, NatInfo } from "./protocol.js";

export interface ReflectorObservation {
  /** Which reflector port answered: 0 = the registry's HTTP port number, 1 = the second port. */
  reflector: 0 | 1;
  /** The reflector we asked. */
  server: Endpoint;
  /** Our source address:port as the reflector saw it (already signature-checked by the caller). */
  observed: Endpoint;
  rttMs: number;
}

export interface NetcheckReport {
  /** none: the IPv4 source is an address of this host; endpoint-dependent: a symmetric NAT. */
  mapping: NatInfo["mapping"];
  /** Whether the NAT kept the probe socket's port; null when there is no IPv4 answer or no NAT. */
  portPreserved: boolean | null;
  ipv4: { public: Endpoint } | null;
  ipv6: { reachable: boolean; public: Endpoint | null };
  /** Round trips to each reflector that answered, by "ip:port". */
  latencies: { server: string; rttMs: number }[];
}

export interface NetcheckInput {
  probePort: number;
  /** Addresses configured on this host (any family). */
  localAddresses: readonly string[];
  observations: readonly ReflectorObservation[];
}

const sameEndpoint = (a: Endpoint, b: Endpoint): boolean => a.address === b.address && a.port === b.port;

export function computeNetcheck(input: NetcheckInput): NetcheckReport {
  const locals = new Set(input.localAddresses.map(normalizeAddress));
  const obs = input.observations.map((o) => ({
    ...o,
    observed: { ...o.observed, address: normalizeAddress(o.observed.address) },
  }));
  const v4 = obs.filter((o) => familyOf(o.observed.address) === "ipv4");
  const v6 = obs.filter((o) => familyOf(o.observed.address) === "ipv6");
  const first4 = v4[0]?.observed;

  let mapping: NatInfo["mapping"] = "unknown";
  if (first4 && locals.has(first4.address) && first4.port === input.probePort) mapping = "none";
  else {
    const a = v4.find((o) => o.reflector === 0)?.observed;
    const b = v4.find((o) => o.reflector === 1)?.observed;
    if (a && b) mapping = sameEndpoint(a, b) ? "endpoint-independent" : "endpoint-dependent";
  }
  return {
    mapping,
    portPreserved: first4 && mapping !== "none" ? first4.port === input.probePort : null,
    ipv4: first4 ? { public: first4 } : null,
    ipv6: { reachable: v6.length > 0, public: v6[0]?.observed ?? null },
    latencies: obs.map((o) => ({ server: formatEndpoint(o.server), rttMs: o.rttMs })),
  };
}

export function natInfoOf(r: NetcheckReport | undefined): NatInfo {
  if (!r) return { mapping: "unknown", ipv6: false };
  return {
    mapping: r.mapping,
    ...(r.portPreserved === null ? {} : { portPreserved: r.portPreserved }),
    ipv6: r.ipv6.reachable,
  };
}

export interface CandidateInput {
  probePort: number;
  /** Usable host addresses (the daemon filters loopback and link-local). */
  localAddresses: readonly string[];
  netcheck: NetcheckReport | undefined;
  /** WireGuard endpoints from the config (`scope join --endpoint`). */
  configured?: readonly Endpoint[];
  /** WireGuard endpoints of this host that peers reported (port-shifting NATs). */
  reported: readonly Candidate[];
}

/** The candidate list a host publishes, in a stable order (IPv6 first, as peers try them). */
export function composeCandidates(input: CandidateInput): Candidate[] {
  const out: Candidate[] = [];
  const add = (c: Candidate): void => {
    if (!out.some((x) => x.address === c.address && x.port === c.port && x.kind === c.kind)) out.push(c);
  };
  const locals = input.localAddresses.map(normalizeAddress);
  for (const address of [...locals].sort((a, b) => familyRank(a) - familyRank(b) || (a < b ? -1 : 1))) {
    add({ address, port: input.probePort, kind: "local" });
  }
  const refl = [input.netcheck?.ipv4?.public, input.netcheck?.ipv6.public].filter(
    (e): e is Endpoint => e !== undefined && e !== null,
  );
  for (const e of refl)
    if (!(locals.includes(e.address) && e.port === input.probePort)) add({ ...e, kind: "reflexive" });
  // A configured endpoint is the admin's word (a hub's fixed public address): first after the host's own.
  for (const e of input.configured ?? []) add({ ...e, kind: "configured" });
  for (const c of input.reported) add(c);
  return out.slice(0, 32);
}

const familyRank = (a: string): number => (familyOf(a) === "ipv6" ? 0 : 1);
