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
import {
  endpointFamily,
  familyOf,
  formatEndpoint,
  isPrivateAddress,
  parseEndpoint,
  type Family,
} from "./ip.js";
import type { Candidate, Endpoint, Peer } from "./protocol.js";
import { V6_RTT_ALLOWANCE_MS } from "./timers.js";

export type PathKind = Candidate["kind"] | "roamed";

/**
 * Where a WireGuard endpoint of a peer came from, most trusted first. This is
 * the one idea of an endpoint the engine has (docs/join.md "Choice"):
 *
 * - `roamed`: WireGuard itself moved the peer there after an authenticated
 *   packet, or a completed handshake proved it (stats). Outranks everything:
 *   it is where the peer really sends from.
 * - `reported`: another peer received this peer's WireGuard traffic from
 *   there (peerReport, or a `reported` candidate in its record).
 * - `answered`: a published candidate whose address answered our probes; the
 *   WireGuard port is the peer's listenPort (right when ports are preserved).
 * - `guessed`: a published candidate nobody has answered on yet.
 */
export type EvidenceSource = "roamed" | "reported" | "answered" | "guessed";

/** One fact about where a peer's WireGuard port can be reached. */
export interface EndpointEvidence {
  /** WireGuard endpoint text, "ip:port" or "[v6]:port". */
  endpoint: string;
  source: EvidenceSource;
  /** When it was learned or last confirmed (epoch ms). */
  at: number;
}

export interface PathCandidate {
  /** WireGuard endpoint text, "ip:port" or "[v6]:port". */
  endpoint: string;
  family: Family;
  kind: PathKind;
  /** How it is known (see EvidenceSource); answered/guessed follow rttMs. */
  source: EvidenceSource;
  /** Lowest probe round trip through any probe target of this candidate; null while none answered. */
  rttMs: number | null;
  /** Probe targets that test this candidate's address. */
  probes: Endpoint[];
  /** The address is private (RFC 1918/ULA): good only on a shared LAN. */
  private: boolean;
  /**
   * Known only from a reflexive candidate whose probe port was shifted by the
   * NAT: the WireGuard port here is a guess that a port-shifting NAT makes
   * wrong. Never configured (only roaming or a report can tell the port).
   */
  shifted: boolean;
}

/** Lower is better when nothing else decides. */
const KIND_RANK: Readonly<Record<PathKind, number>> = {
  roamed: 0,
  reported: 1,
  configured: 2,
  reflexive: 3,
  local: 4,
};
export { V6_RTT_ALLOWANCE_MS };

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
    // A shifted probe-port mapping says the NAT does not preserve ports: an
    // answer proves the probe mapping, not the guessed WireGuard endpoint.
    const shifted = c.kind === "reflexive" && c.port !== peer.probePort;
    let pc = byEndpoint.get(endpoint);
    if (!pc) {
      pc = {
        endpoint,
        family: familyOf(c.address),
        kind: c.kind,
        source: c.kind === "reported" ? "reported" : "guessed",
        rttMs: null,
        probes: [],
        private: isPrivateAddress(c.address),
        shifted,
      };
      byEndpoint.set(endpoint, pc);
    } else {
      if (KIND_RANK[c.kind] < KIND_RANK[pc.kind]) pc.kind = c.kind;
      if (!shifted) pc.shifted = false;
    }
    if (probe && !pc.probes.some((p) => p.address === probe.address && p.port === probe.port)) {
      pc.probes.push(probe);
      const rtt = shifted ? null : rttOf(probe);
      if (rtt !== null && (pc.rttMs === null || rtt < pc.rttMs)) pc.rttMs = rtt;
      if (rtt !== null && pc.source === "guessed") pc.source = "answered";
    }
  }
  return [...byEndpoint.values()];
}

/** Evidence learned outside the record (roamed, reported) as a candidate of the same kind. */
export function evidenceCandidate(e: EndpointEvidence): PathCandidate {
  return {
    endpoint: e.endpoint,
    family: endpointFamily(e.endpoint),
    kind: e.source === "roamed" ? "roamed" : "reported",
    source: e.source,
    rttMs: null,
    probes: [],
    private: isPrivateAddress(parseEndpoint(e.endpoint)?.address ?? ""),
    shifted: false,
  };
}

/**
 * betterPath with trust on top: roamed evidence (WireGuard saw the peer's
 * authenticated traffic there) beats any guess, answered or not; everything
 * else is ranked by betterPath.
 */
export function betterEndpoint(a: PathCandidate, b: PathCandidate): boolean {
  const ar = a.source === "roamed";
  if (ar !== (b.source === "roamed")) return ar;
  return betterPath(a, b);
}

export interface ChoiceContext {
  now: number;
  /** Endpoints that got no handshake within the timeout in this attempt. */
  failed: ReadonlySet<string>;
  /** Until then a silent IPv6 candidate is still preferred over IPv4 (happy eyeballs). */
  v6Deadline: number;
  /** The peer's IPv4 address answered probes in this attempt. */
  v4Answered: boolean;
  /**
   * The choice goes into the apply that adds the peer to WireGuard. Only
   * then may a shifted guess be configured (see chooseEndpoint).
   */
  addsPeer: boolean;
}

export interface Choice {
  endpoint: string | undefined;
  /** Every candidate had failed once: the caller forgets the failures and starts over. */
  startOver: boolean;
}

/**
 * The WireGuard endpoint to configure for a peer that is not direct, from
 * every candidate of the families this host may use. Pure; table-tested.
 */
export function chooseEndpoint(cands: readonly PathCandidate[], ctx: ChoiceContext): Choice {
  // What WireGuard roamed to is the peer's real mapping unless it moved; a
  // guess must not replace it before it has failed once.
  const roamed = cands.find((c) => c.source === "roamed" && !ctx.failed.has(c.endpoint));
  if (roamed) return { endpoint: roamed.endpoint, startOver: false };
  const rest = cands.filter((c) => c.source !== "roamed");
  // A private address of another LAN leads nowhere; use one only if it answered
  // (same LAN) or if nothing public exists at all.
  const reachable = rest.filter((c) => !c.private || c.rttMs !== null);
  // A port-shifting NAT's WireGuard port cannot be guessed, and an apply of
  // the guess landing after WireGuard roamed would undo the one working
  // endpoint (docs/join.md, port-shifting). In the apply that adds the peer
  // it is harmless (WireGuard cannot have roamed for a peer it did not know)
  // and useful: the initiation it sends opens this host's own NAT toward the
  // peer's address, which an address-restricted cone needs. Never later. It
  // still shows the peer is public there, so no private address is tried.
  const all = (reachable.some((c) => !c.private) ? reachable : rest).filter(
    (c) => ctx.addsPeer || !c.shifted,
  );
  if (all.length === 0) return { endpoint: undefined, startOver: false };
  let usable = all.filter((c) => !ctx.failed.has(c.endpoint));
  const startOver = usable.length === 0;
  if (startOver) usable = all;
  const best = bestPath(usable);
  const pick = (endpoint: string | undefined): Choice => ({ endpoint, startOver });
  if (best?.family !== "ipv4") {
    // A silent IPv6 candidate outranks IPv4 ones that have no round trip of
    // their own (a reported WireGuard mapping) even when the peer's IPv4
    // address answers probes: that answer is enough to move to IPv4 once
    // IPv6 had its grace.
    if (best?.rttMs === null && ctx.v4Answered && ctx.now >= ctx.v6Deadline) {
      const v4 = bestPath(usable.filter((c) => c.family === "ipv4"));
      if (v4 !== undefined) return pick(v4.endpoint);
    }
    return pick(best?.endpoint);
  }
  const v6 = bestPath(usable.filter((c) => c.family === "ipv6"));
  if (v6 && v6.rttMs === null && ctx.now < ctx.v6Deadline) return pick(v6.endpoint);
  return pick(best.endpoint);
}
