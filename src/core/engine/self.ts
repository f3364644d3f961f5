/**
 * This host's own record: its candidates, what peers saw of its WireGuard
 * port, and migration when its addresses or NAT mapping change.
 */
import { familyOf, formatEndpoint } from "../ip.js";
import { composeCandidates, natInfoOf, type NetcheckReport } from "../netcheck.js";
import type { Candidate, Endpoint, NatInfo, Peer } from "../protocol.js";
import { log } from "./log.js";
import { isDirect, restartAttempt } from "./paths.js";
import type { EngineEffect, EngineState } from "./types.js";

/** The candidates this host publishes, from its addresses, netcheck and reports. */
export function selfCandidates(st: EngineState): Candidate[] {
  return composeCandidates({
    probePort: st.cfg.probePort,
    localAddresses: st.addresses,
    netcheck: st.netcheck,
    reported: st.reportedSelf,
    configured: st.cfg.configured ?? [],
  });
}

/** True when a peer's record already says its WireGuard port is reachable at e. */
export const impliedBy = (peer: Peer, e: Endpoint): boolean =>
  peer.candidates.some(
    (c) =>
      c.address === e.address &&
      (c.kind === "reported" || c.kind === "configured" ? c.port : peer.listenPort) === e.port,
  );

/**
 * A peer saw our WireGuard traffic come from e. Worth publishing only if no
 * candidate implies it already: that is the port-shifting NAT case, where
 * nobody else can know the WireGuard port's mapping (DESIGN §4).
 */
export function learnSelfEndpoint(st: EngineState, e: Endpoint, fx: EngineEffect[]): void {
  const self = st.self;
  if (!self || familyOf(e.address) !== "ipv4" || st.addresses.includes(e.address)) return;
  // Behind a symmetric NAT each peer sees its own mapping: useless to anyone
  // else. While the mapping behaviour is unknown (no netcheck answer yet) it
  // may be symmetric: publish only what is known to be valid for everyone.
  if (self.nat.mapping !== "endpoint-independent") return;
  // A port-shifting NAT keeps the address and moves the port: a report with
  // another address is stale (sent before we moved) or a LAN view.
  const reflexive = st.netcheck?.ipv4?.public.address;
  if (reflexive !== undefined && reflexive !== e.address) return;
  if (impliedBy(self, e)) return;
  st.reportedSelf = [{ ...e, kind: "reported" as const }, ...st.reportedSelf].slice(0, 2);
  self.candidates = selfCandidates(st);
  fx.push(
    log("info", "peers see this host's WireGuard port at a shifted mapping", { endpoint: formatEndpoint(e) }),
  );
  fx.push({ type: "updateSelf", update: { candidates: self.candidates } });
}

/**
 * A fresh netcheck over the last one. Lost reflector answers must not look
 * like a migration (a migration clears what peers reported and restarts
 * every peer): under load (40 joins on 2 cores) answers get lost and a
 * periodic netcheck that missed its IPv4 or IPv6 answers re-announced and
 * restarted everything every minute. What a missing answer would change is
 * kept from the last report. periodic: no local address changed, so an
 * unanswered IPv6 reflector means a lost answer, not a lost address.
 */
export function mergeNetcheck(
  old: NetcheckReport | undefined,
  r: NetcheckReport,
  opts: { periodic: boolean } = { periodic: false },
): NetcheckReport {
  if (!old) return r;
  return {
    ...r,
    ipv4: r.ipv4 ?? old.ipv4,
    mapping: r.mapping === "unknown" ? old.mapping : r.mapping,
    portPreserved: r.ipv4 ? r.portPreserved : old.portPreserved,
    ipv6: opts.periodic && !r.ipv6.reachable && old.ipv6.reachable ? old.ipv6 : r.ipv6,
  };
}

const sameNat = (a: NatInfo, b: NatInfo): boolean =>
  a.mapping === b.mapping && a.portPreserved === b.portPreserved && a.ipv6 === b.ipv6;
const sameCandidates = (a: Candidate[], b: Candidate[]): boolean =>
  a.length === b.length &&
  a.every((c, i) => c.address === b[i]?.address && c.port === b[i]?.port && c.kind === b[i]?.kind);

export function migrateIfChanged(st: EngineState, now: number, fx: EngineEffect[]): void {
  const self = st.self;
  if (!self) return;
  const fresh = selfCandidates(st).filter((c) => c.kind !== "reported");
  const nat = natInfoOf(st.netcheck);
  const old = self.candidates.filter((c) => c.kind !== "reported");
  const natChanged = !sameNat(nat, self.nat);
  if (sameCandidates(fresh, old) && !natChanged) return;
  // Only a lost address or a new NAT mapping can break a working path. A
  // link that merely appears (docker0, a VPN, a veth) must not reset live
  // sessions: re-attempting a direct peer re-creates it in WireGuard and
  // drops packets for a round trip.
  const lost =
    natChanged || old.some((c) => !fresh.some((f) => f.address === c.address && f.port === c.port));
  if (lost) st.reportedSelf = []; // our WireGuard mapping may have changed: reports about it are stale
  self.candidates = lost ? fresh : [...fresh, ...self.candidates.filter((c) => c.kind === "reported")];
  self.nat = nat;
  fx.push(
    log("info", "addresses changed: re-announcing and re-probing", { candidates: fresh.map(formatEndpoint) }),
  );
  fx.push({ type: "updateSelf", update: { candidates: self.candidates, nat } });
  st.dirty.all = true;
  for (const ps of st.peers.values()) if (lost || !isDirect(ps, now)) restartAttempt(st, ps, now);
}
