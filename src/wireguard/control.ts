/**
 * The control seam: how the backend reads and writes WireGuard's own
 * configuration (keys, peers), apart from the link (addresses, MTU, up)
 * that `ip` handles in both flavours. Two implementations: UAPI for
 * wireguard-go (here) and wg(8) for kernel WireGuard (wgtool.ts).
 */
import type { DesiredState, PeerStats } from "../core/backend.js";
import { ScopeError } from "../core/errors.js";
import { shortKey } from "../crypto/keys.js";
import type { Plan } from "./diff.js";
import type { DeviceState, PeerState } from "./model.js";
import {
  checkErrno,
  encodeRetrigger,
  encodeSet,
  parseGet,
  UapiUnavailableError,
  type UapiTransport,
} from "./uapi.js";

export interface WgControl {
  /** Live state, or undefined when the interface does not exist. */
  read(): Promise<DeviceState | undefined>;
  /** Send exactly the plan; `desired` is normalized and holds the secrets the plan refers to. */
  write(plan: Plan, desired: DesiredState): Promise<void>;
  /** Re-create the peer with its live config so a handshake starts now (uapi.ts: encodeRetrigger). */
  retrigger(peer: PeerState): Promise<void>;
}

export class UapiControl implements WgControl {
  constructor(
    private readonly transport: UapiTransport,
    private readonly onIgnoredKeys: (keys: string[]) => void = () => undefined,
  ) {}

  async read(): Promise<DeviceState | undefined> {
    let reply: string;
    try {
      reply = await this.transport.request("get=1\n\n");
    } catch (err) {
      if (err instanceof UapiUnavailableError) return undefined;
      throw err;
    }
    const { state, ignored } = parseGet(reply);
    if (ignored.length) this.onIgnoredKeys(ignored);
    return state;
  }

  async write(plan: Plan, desired: DesiredState): Promise<void> {
    checkErrno(await this.transport.request(encodeSet(plan, desired)), "set");
  }

  async retrigger(peer: PeerState): Promise<void> {
    checkErrno(await this.transport.request(encodeRetrigger(peer)), "set");
  }
}

/** A backend failure that keeps its cause's message; shared by the wg and networkd backends. */
export const backendError = (message: string, cause: unknown): ScopeError =>
  new ScopeError("backend", `${message}: ${cause instanceof Error ? cause.message : String(cause)}`, {
    cause,
  });

/** Backend.stats() of a live state: endpoint, last handshake and counters per peer. */
export const peerStatsOf = (state: DeviceState | undefined): PeerStats[] =>
  (state?.peers ?? []).map((p) => ({
    publicKey: p.publicKey,
    endpoint: p.endpoint,
    lastHandshakeMs: p.lastHandshakeMs,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
  }));

/** What a handshake trigger did: the endpoint the initiation went to, or why none was sent. */
export type RetriggerResult =
  { triggered: true; endpoint: string } | { triggered: false; why: "no endpoint" | "fresh handshake" };

/**
 * Backend.triggerHandshake on any WgControl: re-creates the peer with its
 * live config (learned endpoint included) so WireGuard sends an initiation
 * now instead of after its 5 s rate limit. Costs the peer's current session
 * and resets its rx/tx counters, so the core calls it only for a peer that
 * has no working session yet — as far as it knows. Its stats may be older
 * than a handshake that has just completed (most often one the other side
 * started): re-creating the peer then drops those keys while the other side
 * keeps sending with them, and if our new initiation is lost too (the other
 * side drops one that follows the last within 20 ms) WireGuard waits 5 s.
 * So the live read this needs anyway decides: a handshake newer than
 * `seenHandshakeMs` (the caller's last known, 0 for none) is a working
 * session the caller has not seen, and nothing is done. One it has seen
 * and still triggers for (an older path's) is replaced, as asked.
 * Sends nothing either when the peer has no endpoint (it will initiate, or
 * a later apply brings one). `who` prefixes errors ("wg", "networkd").
 */
export async function retriggerPeer(
  control: WgControl,
  publicKey: string,
  who: string,
  iface: string,
  seenHandshakeMs?: number,
): Promise<RetriggerResult> {
  const peer = (await control.read())?.peers.find((p) => p.publicKey === publicKey);
  if (!peer) throw new ScopeError("not_found", `${who}: no peer ${shortKey(publicKey)} on ${iface}`);
  if (!peer.endpoint) return { triggered: false, why: "no endpoint" };
  const hs = peer.lastHandshakeMs;
  if (hs !== undefined && seenHandshakeMs !== undefined && hs > seenHandshakeMs)
    return { triggered: false, why: "fresh handshake" };
  try {
    await control.retrigger(peer);
  } catch (err) {
    throw backendError(`${who}: handshake trigger for ${shortKey(publicKey)} failed`, err);
  }
  return { triggered: true, endpoint: peer.endpoint };
}
