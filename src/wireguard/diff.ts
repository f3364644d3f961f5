/**
 * The pure part of apply(): live state + desired state → a list of changes,
 * innernet's PeerDiff/PeerChange in TypeScript. No I/O, no clock.
 *
 * Changes never carry a secret. A change says *that* the private key or a
 * PSK differs; the encoders (uapi.ts, wgtool.ts) look the value up in the
 * DesiredState when they write it. So a change list can be logged, returned
 * in ApplyResult or JSON-dumped in a test without leaking anything.
 */
import type { DesiredState } from "../core/backend.js";
import { shortKey, wgKeyPairFromPrivate } from "../crypto/keys.js";
import { canonicalAddress, canonicalCidrs, canonicalEndpoint, sameList } from "../core/ip.js";
import type { DeviceState, LinkState, PeerState } from "./model.js";

export type DeviceChange =
  /** Public halves only, for the log line. */
  | { kind: "private-key"; fromPublic?: string; toPublic: string }
  | { kind: "listen-port"; from?: number; to: number };

export type PeerChange =
  | {
      kind: "add";
      publicKey: string;
      endpoint?: string;
      allowedIps: string[];
      keepalive: number;
      psk: boolean;
    }
  | { kind: "remove"; publicKey: string }
  | { kind: "endpoint"; publicKey: string; from?: string; to: string }
  | { kind: "allowed-ips"; publicKey: string; from: string[]; to: string[] }
  | { kind: "keepalive"; publicKey: string; from: number; to: number }
  /** "new" covers both first set and rotation; the value comes from DesiredState. */
  | { kind: "psk"; publicKey: string; from: "none" | "set"; to: "none" | "new" };

export type LinkChange =
  | { kind: "mtu"; from: number; to: number }
  | { kind: "address-add"; address: string }
  | { kind: "address-del"; address: string }
  | { kind: "up" };

export interface Plan {
  device: DeviceChange[];
  peers: PeerChange[];
}

export const isEmptyPlan = (p: Plan): boolean => p.device.length === 0 && p.peers.length === 0;

/** Desired peers with canonical spelling, keyed by public key. Throws on malformed input before any effect. */
export function normalizeDesired(desired: DesiredState): DesiredState {
  const seen = new Set<string>();
  const peers = desired.peers.map((p) => {
    if (seen.has(p.publicKey)) throw new Error(`peer ${shortKey(p.publicKey)} listed twice`);
    seen.add(p.publicKey);
    return {
      ...p,
      endpoint: p.endpoint === undefined ? undefined : canonicalEndpoint(p.endpoint),
      allowedIps: canonicalCidrs(p.allowedIps),
      persistentKeepalive: p.persistentKeepalive ?? 0,
    };
  });
  const addresses = [...new Set(desired.iface.addresses.map(canonicalAddress))].sort();
  return { iface: { ...desired.iface, addresses }, peers };
}

/** `desired` must come from normalizeDesired. */
export function planDevice(current: DeviceState, desired: DesiredState): Plan {
  const device: DeviceChange[] = [];
  if (current.privateKey !== desired.iface.privateKey) {
    device.push({
      kind: "private-key",
      fromPublic: current.privateKey && wgKeyPairFromPrivate(current.privateKey).publicKey,
      toPublic: wgKeyPairFromPrivate(desired.iface.privateKey).publicKey,
    });
  }
  if (current.listenPort !== desired.iface.listenPort) {
    device.push({ kind: "listen-port", from: current.listenPort, to: desired.iface.listenPort });
  }

  const peers: PeerChange[] = [];
  const live = new Map(current.peers.map((p) => [p.publicKey, p]));
  const wanted = new Set(desired.peers.map((p) => p.publicKey));
  for (const p of current.peers) {
    if (!wanted.has(p.publicKey)) peers.push({ kind: "remove", publicKey: p.publicKey });
  }
  for (const want of desired.peers) {
    const have = live.get(want.publicKey);
    const keepalive = want.persistentKeepalive ?? 0;
    if (!have) {
      peers.push({
        kind: "add",
        publicKey: want.publicKey,
        endpoint: want.endpoint,
        allowedIps: want.allowedIps,
        keepalive,
        psk: want.presharedKey !== undefined,
      });
      continue;
    }
    const publicKey = want.publicKey;
    // An absent desired endpoint means "no opinion": WireGuard roams to
    // wherever authenticated packets come from, and overwriting that with a
    // stale value would break NAT traversal.
    if (want.endpoint !== undefined && want.endpoint !== have.endpoint) {
      peers.push({ kind: "endpoint", publicKey, from: have.endpoint, to: want.endpoint });
    }
    if (!sameList(have.allowedIps, want.allowedIps)) {
      peers.push({ kind: "allowed-ips", publicKey, from: have.allowedIps, to: want.allowedIps });
    }
    if (have.persistentKeepalive !== keepalive) {
      peers.push({ kind: "keepalive", publicKey, from: have.persistentKeepalive, to: keepalive });
    }
    if (have.presharedKey !== want.presharedKey) {
      peers.push({
        kind: "psk",
        publicKey,
        from: have.presharedKey === undefined ? "none" : "set",
        to: want.presharedKey === undefined ? "none" : "new",
      });
    }
  }
  return { device, peers };
}

/** `desired` must come from normalizeDesired. Order: MTU, removals, additions, then up. */
export function planLink(current: LinkState, desired: DesiredState): LinkChange[] {
  const out: LinkChange[] = [];
  const mtu = desired.iface.mtu;
  if (mtu !== undefined && mtu !== current.mtu) out.push({ kind: "mtu", from: current.mtu, to: mtu });
  const want = new Set(desired.iface.addresses);
  const have = new Set(current.addresses);
  for (const a of current.addresses) if (!want.has(a)) out.push({ kind: "address-del", address: a });
  for (const a of desired.iface.addresses) if (!have.has(a)) out.push({ kind: "address-add", address: a });
  if (!current.up) out.push({ kind: "up" });
  return out;
}

const list = (ips: readonly string[]): string => (ips.length ? ips.join(",") : "(none)");
const ka = (s: number): string => (s ? `${s}s` : "off");

/** One line per change, innernet style "old => new". Never a secret: there is none to print. */
export function describeChange(c: DeviceChange | PeerChange | LinkChange): string {
  switch (c.kind) {
    case "private-key":
      return `interface public key ${c.fromPublic ? shortKey(c.fromPublic) : "(none)"} => ${shortKey(c.toPublic)}`;
    case "listen-port":
      return `interface listen-port ${c.from ?? "(none)"} => ${c.to}`;
    case "add":
      return (
        `peer ${shortKey(c.publicKey)} added: endpoint ${c.endpoint ?? "(none)"}, allowed-ips ${list(c.allowedIps)}, ` +
        `keepalive ${ka(c.keepalive)}, preshared-key ${c.psk ? "set" : "(none)"}`
      );
    case "remove":
      return `peer ${shortKey(c.publicKey)} removed`;
    case "endpoint":
      return `peer ${shortKey(c.publicKey)} endpoint ${c.from ?? "(none)"} => ${c.to}`;
    case "allowed-ips":
      return `peer ${shortKey(c.publicKey)} allowed-ips ${list(c.from)} => ${list(c.to)}`;
    case "keepalive":
      return `peer ${shortKey(c.publicKey)} keepalive ${ka(c.from)} => ${ka(c.to)}`;
    case "psk":
      return `peer ${shortKey(c.publicKey)} preshared-key ${c.from === "set" ? "(set)" : "(none)"} => ${c.to === "new" ? "(new)" : "(none)"}`;
    case "mtu":
      return `interface mtu ${c.from} => ${c.to}`;
    case "address-add":
      return `interface address + ${c.address}`;
    case "address-del":
      return `interface address - ${c.address}`;
    case "up":
      return "interface link up";
    default: {
      const never: never = c;
      throw new Error(`unknown change ${JSON.stringify(never)}`);
    }
  }
}

/**
 * For backends that persist the peer set (networkd files, NetworkManager
 * profiles): the desired state with an endpoint for every peer where one
 * is known. An absent desired endpoint means "keep what WireGuard
 * roamed to" for the live device, but a stored peer without an endpoint
 * has nowhere to send to after a reboot. So such a peer gets the first
 * endpoint found in `known`, in the order given (e.g. the live device,
 * then what was stored before).
 */
export function withKnownEndpoints(
  want: DesiredState,
  ...known: (readonly { publicKey: string; endpoint?: string }[] | undefined)[]
): DesiredState {
  const found = new Map<string, string>();
  for (const list of [...known].reverse())
    for (const p of list ?? []) if (p.endpoint) found.set(p.publicKey, p.endpoint);
  return {
    ...want,
    peers: want.peers.map((p) => {
      const endpoint = p.endpoint ?? found.get(p.publicKey);
      return endpoint === undefined ? p : { ...p, endpoint };
    }),
  };
}

/**
 * The device as it is right after `plan` landed on `current`: what a read
 * would return then, but for counters, handshakes and roaming. Lets the
 * backend diff the next apply against what it last wrote instead of
 * reading every peer back first (a UAPI get of 1 000 peers costs more than
 * adding one). `desired` must come from normalizeDesired and be the state
 * the plan was made for; its allowed IPs are unique across peers, as the
 * engine makes them (WireGuard would move a duplicate to the last peer).
 */
export function applyPlan(current: DeviceState, plan: Plan, desired: DesiredState): DeviceState {
  const next: DeviceState = { ...current, peers: [] };
  for (const c of plan.device) {
    if (c.kind === "private-key") next.privateKey = desired.iface.privateKey;
    else next.listenPort = c.to;
  }
  const peers = new Map(current.peers.map((p) => [p.publicKey, p]));
  const wanted = new Map(desired.peers.map((p) => [p.publicKey, p]));
  const edit = (key: string, over: Partial<PeerState>): void => {
    const have = peers.get(key);
    if (have) peers.set(key, { ...have, ...over });
  };
  for (const c of plan.peers) {
    switch (c.kind) {
      case "remove":
        peers.delete(c.publicKey);
        break;
      case "add":
        peers.set(c.publicKey, {
          publicKey: c.publicKey,
          presharedKey: wanted.get(c.publicKey)?.presharedKey,
          endpoint: c.endpoint,
          allowedIps: c.allowedIps,
          persistentKeepalive: c.keepalive,
          rxBytes: 0,
          txBytes: 0,
        });
        break;
      case "endpoint":
        edit(c.publicKey, { endpoint: c.to });
        break;
      case "allowed-ips":
        edit(c.publicKey, { allowedIps: c.to });
        break;
      case "keepalive":
        edit(c.publicKey, { persistentKeepalive: c.to });
        break;
      case "psk":
        edit(c.publicKey, {
          presharedKey: c.to === "new" ? wanted.get(c.publicKey)?.presharedKey : undefined,
        });
        break;
      default: {
        const never: never = c;
        throw new Error(`unknown change ${JSON.stringify(never)}`);
      }
    }
  }
  next.peers = [...peers.values()];
  return next;
}
