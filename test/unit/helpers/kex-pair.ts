/**
 * Two engines with PSK rotation on, joined to each other, and the kex
 * messages between them in a hand-carried queue: a test decides what the
 * "registry" delivers (tampered, replayed, dropped, from someone else).
 */
import {
  createEngineState,
  step,
  type EngineEffect,
  type EngineState,
} from "../../../src/core/engine/index.js";
import type { Event, JoinResponse, Peer, PostMessage } from "../../../src/core/protocol.js";
import { TIMER_PROFILES } from "../../../src/core/timers.js";
import type { RandomBytes } from "../../../src/crypto/kex.js";
import {
  identityFromSecret,
  peerIdOf,
  wgKeyPairFromPrivate,
  type Identity,
} from "../../../src/crypto/keys.js";
import { prng } from "../prng.js";
import { identityKeyer } from "../../../src/core/probe/mac.js";

export const NETWORK = { name: "lab", cidr: "10.88.0.0/16", topology: "mesh" as const, createdAt: 0 };

/** Deterministic bytes from a seed (tests only: a known answer needs known randomness). */
export function seededBytes(seed: number): RandomBytes {
  const r = prng(seed);
  return (n) => Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

export interface Side {
  name: string;
  identity: Identity;
  wgPublic: string;
  record: Peer;
  st: EngineState;
  /** Effects of the last steps, cleared by take(). */
  fx: EngineEffect[];
}

function fixedKey(seed: number): Buffer {
  const b = Buffer.from(seededBytes(seed)(32));
  b[0] = (b[0] ?? 0) & 248;
  b[31] = ((b[31] ?? 0) & 127) | 64;
  return b;
}

export function makeRecord(name: string, identity: Identity, wgPublic: string, n: number): Peer {
  return {
    id: peerIdOf(identity.publicKey),
    network: NETWORK.name,
    name,
    identityKey: identity.publicKey,
    wgPublicKey: wgPublic,
    listenPort: 51820,
    probePort: 51821,
    candidates: [],
    nat: { mapping: "none", ipv6: false },
    role: "edge",
    address: `10.88.0.${n}`,
    joinedAt: 0,
    updatedAt: 0,
  };
}

export function side(name: string, seed: number, intervalMs: number): Side {
  const identity = identityFromSecret(fixedKey(seed));
  const wg = wgKeyPairFromPrivate(fixedKey(seed + 1000).toString("base64"));
  const st = createEngineState(
    {
      profile: TIMER_PROFILES.fast,
      identity: identityKeyer(identity),
      nonceSalt: "0000000" + String(seed % 10),
      probePort: 51821,
      kex: { intervalMs, random: seededBytes(seed + 2000) },
    },
    [],
    undefined,
  );
  return {
    name,
    identity,
    wgPublic: wg.publicKey,
    record: makeRecord(name, identity, wg.publicKey, seed + 2),
    st,
    fx: [],
  };
}

export function join(a: Side, b: Side, now: number): void {
  joinMesh([a, b], now);
}

/** Every side joins with all the others as its peers. */
export function joinMesh(sides: readonly Side[], now: number): void {
  for (const self of sides) {
    const response: JoinResponse = {
      self: self.record,
      network: NETWORK,
      peers: sides.filter((s) => s !== self).map((s) => s.record),
      lastEventId: 0,
      registryKey: self.identity.publicKey,
      reflectorPorts: [8470, 8471],
    };
    self.fx.push(...step(self.st, { type: "joined", response, existing: [] }, now).effects);
  }
}

let eventId = 0;

/** The kex posts among effects, as the registry would relay them from `fromId`. */
export function relayedKex(fromId: string, fx: readonly EngineEffect[]): Event[] {
  const out: Event[] = [];
  for (const e of fx) {
    if (e.type !== "postMessage" || e.message.type !== "cc.ltgc.scope:kex") continue;
    const m = e.message as Extract<PostMessage, { type: "cc.ltgc.scope:kex" }>;
    out.push({
      id: ++eventId,
      type: m.type,
      network: NETWORK.name,
      from: fromId,
      to: m.to,
      ts: 0,
      body: m.body,
    });
  }
  return out;
}

/** The kex posts a side made so far, taken out of its effects. */
export function kexEvents(from: Side): Event[] {
  const out = relayedKex(from.record.id, from.fx);
  from.fx = from.fx.filter((e) => !(e.type === "postMessage" && e.message.type === "cc.ltgc.scope:kex"));
  return out;
}

export function deliver(to: Side, ev: Event, now: number): EngineEffect[] {
  const fx = step(to.st, { type: "event", event: ev }, now).effects;
  to.fx.push(...fx);
  return fx;
}

/** Carries kex messages both ways until none is left; returns every event carried. */
export function settle(a: Side, b: Side, now: number): Event[] {
  const carried: Event[] = [];
  for (let round = 0; round < 10; round++) {
    const fromA = kexEvents(a);
    const fromB = kexEvents(b);
    if (fromA.length + fromB.length === 0) break;
    for (const ev of fromA) deliver(b, ev, now);
    for (const ev of fromB) deliver(a, ev, now);
    carried.push(...fromA, ...fromB);
  }
  return carried;
}

export const kexOf = (s: Side, other: Side) => {
  const ps = s.st.peers.get(other.record.id);
  if (!ps) throw new Error(`${s.name} does not know ${other.name}`);
  return ps.kex;
};

/** The PSK the last applyPeers effect gave the other side's peer entry. */
export function appliedPsk(s: Side, other: Side): string | undefined {
  for (let i = s.fx.length - 1; i >= 0; i--) {
    const e = s.fx[i];
    if (e?.type === "applyPeers") return e.peers.find((p) => p.publicKey === other.wgPublic)?.presharedKey;
  }
  return undefined;
}

/** Decapsulating side first. */
export function ordered(a: Side, b: Side): [Side, Side] {
  return Buffer.compare(Buffer.from(a.wgPublic, "base64"), Buffer.from(b.wgPublic, "base64")) > 0
    ? [a, b]
    : [b, a];
}
