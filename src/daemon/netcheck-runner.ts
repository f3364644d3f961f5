/**
 * Netcheck I/O: reflector requests from the probe socket to the registry's
 * two reflector ports over IPv4 and IPv6, signature-checked replies in,
 * a NetcheckReport out (the reasoning is src/core/netcheck.ts).
 */
import { randomBytes } from "node:crypto";
import { lookup } from "node:dns/promises";
import { networkInterfaces } from "node:os";
import { familyOf, isUsableAddress, normalizeAddress } from "../core/ip.js";
import { computeNetcheck, type NetcheckReport, type ReflectorObservation } from "../core/netcheck.js";
import type { Endpoint } from "../core/protocol.js";
import { encodeRequest, parseReply } from "../core/reflector.js";
import { sleep, systemClock, type Clock } from "../core/clock.js";
import { verifyMessage } from "../crypto/keys.js";
import type { ProbeTransport } from "./udp.js";

export interface NetcheckTarget {
  registryUrl: string;
  registryKey: string;
  reflectorPorts: [number, number];
  probePort: number;
  /** The WireGuard interface: its tunnel addresses are not candidates. */
  skipInterface: string;
}

/** Usable addresses of this host, without loopback, link-local and the tunnel itself. */
export function localAddresses(skipInterface: string): string[] {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === skipInterface) continue;
    for (const a of addrs ?? [])
      if (!a.internal && isUsableAddress(a.address)) out.push(normalizeAddress(a.address));
  }
  return [...new Set(out)].sort();
}

async function registryAddresses(url: string): Promise<string[]> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  try {
    return (await lookup(host, { all: true })).map((a) => normalizeAddress(a.address));
  } catch {
    return [];
  }
}

export interface NetcheckOptions {
  /** Both rounds together; each waits at most half of it. */
  timeoutMs?: number;
  clock?: Clock;
  /** Stops waiting for replies (the daemon is stopping); the report then has what came so far. */
  signal?: AbortSignal;
  /** This host's addresses (default: localAddresses(skipInterface)). */
  localAddresses?: () => string[];
}

/** One netcheck for the daemon: what runNetcheck returns, through whatever runs it (the simulator has its own). */
export type NetcheckRunner = (signal: AbortSignal) => Promise<NetcheckReport>;

export async function runNetcheck(
  sock: ProbeTransport,
  t: NetcheckTarget,
  o: NetcheckOptions = {},
): Promise<NetcheckReport> {
  const timeoutMs = o.timeoutMs ?? 800;
  const clock = o.clock ?? systemClock;
  const servers = await registryAddresses(t.registryUrl);
  const pending = new Map<string, { server: Endpoint; reflector: 0 | 1; sentAt: number }>();
  const observations: ReflectorObservation[] = [];
  const prev = sock.onReflector;
  let wake: () => void = () => undefined;
  sock.onReflector = (_from, bytes) => {
    const r = parseReply(bytes);
    if (!r) return;
    const key = Buffer.from(r.nonce).toString("hex");
    const p = pending.get(key);
    if (!p || !verifyMessage(t.registryKey, r.signed, Buffer.from(r.signature).toString("base64"))) return;
    pending.delete(key);
    if (pending.size === 0) wake();
    observations.push({
      reflector: p.reflector,
      server: p.server,
      observed: { address: r.address, port: r.port },
      rttMs: clock.now() - p.sentAt,
    });
  };
  try {
    // Two rounds: one lost datagram should not make a NAT look symmetric or IPv6 dead.
    for (let round = 0; round < 2 && (round === 0 || pending.size > 0) && !o.signal?.aborted; round++) {
      for (const address of servers) {
        for (const [i, port] of t.reflectorPorts.entries()) {
          if (round > 0 && observations.some((o) => o.server.address === address && o.reflector === i))
            continue;
          const nonce = randomBytes(16);
          pending.set(nonce.toString("hex"), {
            server: { address, port },
            reflector: i as 0 | 1,
            sentAt: clock.now(),
          });
          sock.send({ address, port }, encodeRequest({ nonce }));
        }
      }
      // Done early when every request of the round was answered (or when stopping).
      const answered = new AbortController();
      wake = () => answered.abort();
      const stop = () => answered.abort();
      o.signal?.addEventListener("abort", stop, { once: true });
      await sleep(clock, timeoutMs / 2, answered.signal);
      o.signal?.removeEventListener("abort", stop);
    }
  } finally {
    sock.onReflector = prev;
  }
  return computeNetcheck({
    probePort: t.probePort,
    localAddresses: o.localAddresses?.() ?? localAddresses(t.skipInterface),
    observations,
  });
}

export const hasFamily = (addrs: string[], fam: "ipv4" | "ipv6"): boolean =>
  addrs.some((a) => familyOf(a) === fam);
