/**
 * Which WireGuard endpoint to configure for a peer, as pure functions.
 *
 * Candidate ports (docs/join.md): a `local`, `reflexive` or `configured`
 * candidate names where the peer's *prober* is reachable (address + probe
 * port, or the reflector-observed probe-port mapping); its WireGuard endpoint
 * is the same address with the peer's listenPort, a guess that is right when
 * the NAT preserves ports. A `reported` candidate is a WireGuard endpoint
 * itself: someone received the peer's WireGuard traffic from there.
 */
import { familyOf, formatEndpoint, isPrivateAddress, type Family } from "./ip.js";
import type { Candidate, Endpoint, Peer } from "./protocol.js";

export type PathKind = Candidate["kind"] | "roamed";

export interface PathCandidate {
  /** WireGuard endpoint text, "ip:port" or "[v6]:port". */
  endpoint: string;
  family: Family;
  kind: PathKind;
  /** Lowest probe round trip through any probe target of this candidate; null while none answered. */
  rttMs: number | null;
  /** Probe targets that test this candidate's address. */
  probes: Endpoint[];
  /** The address is private (RFC 1918/ULA): good only on a shared LAN. */
  private: boolean;
}

/** Lower is better when nothing else decides. */
const KIND_RANK: Readonly<Record<PathKind, number>> = {
  roamed: 0,
  reported: 1,
  configured: 2,
  reflexive: 3,
  local: 4,
};
/** IPv6 wins over IPv4 unless it is slower by more than this. */
export const V6_RTT_ALLOWANCE_MS = 10;

/**
 * True if a is a better path than b (tailscale's betterAddr): an answered
 * candidate beats a silent one; between answered ones IPv6 wins unless it is
 * clearly slower, then the lower round trip; otherwise IPv6 first, then
 * public before private, then the candidate kind, then the text, so the
 * order is total and stable.
 */
export function betterPath(a: PathCandidate, b: PathCandidate): boolean {
  if ((a.rttMs === null) !== (b.rttMs === null)) return a.rttMs !== null;
  if (a.rttMs !== null && b.rttMs !== null) {
    if (a.family !== b.family) {
      const [v6, v4] = a.family === "ipv6" ? [a.rttMs, b.rttMs] : [b.rttMs, a.rttMs];
      const v6Wins = v6 <= v4 + V6_RTT_ALLOWANCE_MS;
      return a.family === "ipv6" ? v6Wins : !v6Wins;
    }
    if (Math.abs(a.rttMs - b.rttMs) >= 1) return a.rttMs < b.rttMs;
  } else if (a.family !== b.family) {
    return a.family === "ipv6";
  }
  if (a.private !== b.private) return !a.private;
  if (KIND_RANK[a.kind] !== KIND_RANK[b.kind]) return KIND_RANK[a.kind] < KIND_RANK[b.kind];
  return a.endpoint < b.endpoint;
}

export function bestPath(cands: readonly PathCandidate[]): PathCandidate | undefined {
  return cands.reduce<PathCandidate | undefined>(
    (best, c) => (best === undefined || betterPath(c, best) ? c : best),
    undefined,
  );
}

/** Where to send probes for one candidate of a peer. */
export function probeTarget(c: Candidate, peer: Pick<Peer, "probePort">): Endpoint | undefined {
  switch (c.kind) {
    case "reflexive":
      return { address: c.address, port: c.port };
    case "local":
    case "configured":
      return { address: c.address, port: peer.probePort };
    case "reported":
      return undefined;
  }
}

/** The WireGuard endpoint a candidate stands for. */
export function wgEndpointOf(c: Candidate, peer: Pick<Peer, "listenPort">): Endpoint {
  return c.kind === "reported" || c.kind === "configured"
    ? { address: c.address, port: c.port }
    : { address: c.address, port: peer.listenPort };
}

/**
 * A peer's WireGuard endpoint candidates, merged by endpoint (a public host's
 * local and reflexive candidates are one endpoint with two probe targets).
 * extra are WireGuard endpoints learned outside the record (reports).
 */
export function pathCandidates(
  peer: Pick<Peer, "candidates" | "listenPort" | "probePort">,
  extra: readonly Candidate[],
  rttOf: (probe: Endpoint) => number | null,
  families: ReadonlySet<Family>,
): PathCandidate[] {
  const byEndpoint = new Map<string, PathCandidate>();
  for (const c of [...peer.candidates, ...extra]) {
    if (!families.has(familyOf(c.address))) continue;
    const endpoint = formatEndpoint(wgEndpointOf(c, peer));
    const probe = probeTarget(c, peer);
    let pc = byEndpoint.get(endpoint);
    if (!pc) {
      pc = {
        endpoint,
        family: familyOf(c.address),
        kind: c.kind,
        rttMs: null,
        probes: [],
        private: isPrivateAddress(c.address),
      };
      byEndpoint.set(endpoint, pc);
    } else if (KIND_RANK[c.kind] < KIND_RANK[pc.kind]) {
      pc.kind = c.kind;
    }
    if (probe && !pc.probes.some((p) => p.address === probe.address && p.port === probe.port)) {
      pc.probes.push(probe);
      // A shifted probe-port mapping says the NAT does not preserve ports: an
      // answer proves the probe mapping, not the guessed WireGuard endpoint.
      const shifted = c.kind === "reflexive" && c.port !== peer.probePort;
      const rtt = shifted ? null : rttOf(probe);
      if (rtt !== null && (pc.rttMs === null || rtt < pc.rttMs)) pc.rttMs = rtt;
    }
  }
  return [...byEndpoint.values()];
}
