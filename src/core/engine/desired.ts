/**
 * From the slices to one desired peer set: routing gives the allowed IPs,
 * paths the endpoint, kex the PSK. An apply happens only when some peer's
 * entry changed (compared field by field, not by JSON text) or the set of
 * peers did.
 *
 * Endpoints: WireGuard roams to wherever a peer's authenticated packets come
 * from, and that can happen between our last stats read and this apply. An
 * endpoint in the desired set would undo it (backends treat an absent
 * endpoint as "no opinion"), so an entry names an endpoint only where the
 * engine steers: a choice the backend does not have yet.
 */
import type { DesiredPeer } from "../backend.js";
import { PERSISTENT_KEEPALIVE_S } from "../timers.js";
import { presharedKeyOf } from "./kex.js";
import { allowedIpsOf } from "./routing.js";
import type { AppliedState, EngineState, PeerState } from "./types.js";

/** Endpoints remembered as our own doing per peer. */
const NAMED_KEPT = 4;

export const newAppliedState = (): AppliedState => ({
  inBackend: false,
  entry: undefined,
  endpoint: undefined,
  named: [],
});

/** The entry for one peer, without an endpoint. */
export function entryOf(st: EngineState, ps: PeerState, direct: boolean, viaHub = true): DesiredPeer {
  const psk = presharedKeyOf(ps.kex);
  return {
    publicKey: ps.peer.wgPublicKey,
    allowedIps: allowedIpsOf(st.routing, ps, st.network, direct, viaHub),
    persistentKeepalive: PERSISTENT_KEEPALIVE_S,
    ...(psk !== undefined ? { presharedKey: psk } : {}),
  };
}

export function sameEntry(a: DesiredPeer | undefined, b: DesiredPeer): boolean {
  return (
    a !== undefined &&
    a.publicKey === b.publicKey &&
    a.persistentKeepalive === b.persistentKeepalive &&
    a.presharedKey === b.presharedKey &&
    a.endpoint === b.endpoint &&
    a.allowedIps.length === b.allowedIps.length &&
    a.allowedIps.every((ip, i) => ip === b.allowedIps[i])
  );
}

/** The chosen endpoint is one the backend does not have yet. */
export const steering = (ps: PeerState): boolean =>
  ps.paths.endpoint !== undefined && ps.paths.endpoint !== ps.applied.endpoint;

/**
 * The whole desired set, sorted by key, with endpoints where steering, and
 * the bookkeeping that the backend now has it. entries: fresh entries of the
 * peers looked at in this step; others keep their last one.
 */
export function applyAll(
  st: EngineState,
  entries: ReadonlyMap<string, DesiredPeer>,
  now: number,
): DesiredPeer[] {
  const out: DesiredPeer[] = [];
  for (const ps of st.peers.values()) {
    const a = ps.applied;
    const entry = entries.get(ps.peer.id) ?? a.entry;
    if (!entry) continue;
    a.entry = entry;
    const ep = ps.paths.endpoint;
    if (ep !== undefined && steering(ps)) {
      a.endpoint = ep;
      a.named = [{ endpoint: ep, at: now }, ...a.named.filter((n) => n.endpoint !== ep)].slice(0, NAMED_KEPT);
      out.push({ ...entry, endpoint: ep });
    } else out.push(entry);
  }
  return out.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));
}
