/**
 * The UDP reflector (DESIGN §3): answers a well-formed request with the
 * source address and port it came from, signed by the registry key. Two
 * sockets on different ports let `scope netcheck` compare the mappings.
 *
 * It cannot be turned into an amplifier: a reply is never larger than the
 * request (the codec requires padding), malformed datagrams get no answer,
 * and each source address gets a small token bucket.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { encodeReply, parseRequest, type ObservedAddress } from "../core/reflector.js";
import { signMessage, type Identity } from "../crypto/keys.js";
import type { RegistryLogger } from "./deps.js";
import type { Metrics } from "./metrics.js";

/** Per source address: a burst of this many, refilled at RATE_PER_S. */
const BURST = 20;
const RATE_PER_S = 5;
/** Bounds the limiter's memory under a spoofed-source flood. */
export const MAX_TRACKED_SOURCES = 50_000;
/** A full table is swept for idle sources at most this often (a sweep walks all of it). */
const SWEEP_EVERY_MS = 1_000;
/** Where sources go while the table is full of sources that are still limited. */
const OVERFLOW = "overflow";

/**
 * A token bucket per source address. UDP sources can be spoofed, so a flood
 * can name more sources than memory allows; then the table must not simply
 * be forgotten (that would hand every limited source a full bucket again,
 * the very sources a reflection attack uses). Instead:
 * - a bucket that has refilled completely is the same as no bucket, so
 *   those are dropped (a sweep when the table is full, at most once a
 *   second);
 * - while the table is still full, new sources share one overflow bucket:
 *   a flood of fresh addresses gets BURST answers and RATE_PER_S after,
 *   together, and the sources already tracked keep their own state.
 * Home-made rather than rate-limiter-flexible's memory store: that one
 * keeps a timer per key and no bound, which a spoofed flood turns into
 * unbounded memory; TCP sources (limits.ts) cannot be spoofed like this.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweptAt = -Infinity;

  constructor(
    private readonly burst = BURST,
    private readonly ratePerS = RATE_PER_S,
    private readonly maxSources = MAX_TRACKED_SOURCES,
  ) {}

  get tracked(): number {
    return this.buckets.size;
  }

  allow(source: string, now: number): boolean {
    let key = source;
    let b = this.buckets.get(key);
    if (!b && this.buckets.size >= this.maxSources) {
      this.sweep(now);
      if (this.buckets.size >= this.maxSources) {
        key = OVERFLOW;
        b = this.buckets.get(key);
      }
    }
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerS);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drops the buckets that have refilled: they hold nothing a fresh one would not. */
  private sweep(now: number): void {
    if (now - this.sweptAt < SWEEP_EVERY_MS) return;
    this.sweptAt = now;
    const fullAfterMs = (this.burst / this.ratePerS) * 1000;
    for (const [k, b] of this.buckets) if (now - b.at >= fullAfterMs) this.buckets.delete(k);
  }
}

/** What node:dgram reports, with IPv4-mapped IPv6 (dual-stack socket) turned back into IPv4. */
export function observedFrom(rinfo: RemoteInfo): ObservedAddress {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(rinfo.address);
  if (mapped?.[1]) return { family: 4, address: mapped[1], port: rinfo.port };
  return { family: rinfo.family === "IPv6" ? 6 : 4, address: rinfo.address, port: rinfo.port };
}

export interface ReflectorOptions {
  host: string;
  port: number;
  identity: Identity;
  metrics: Metrics;
  log: RegistryLogger;
  now?: () => number;
}

export function startReflector(o: ReflectorOptions): Promise<Socket> {
  const v6 = o.host.includes(":");
  const socket = createSocket({ type: v6 ? "udp6" : "udp4", ipv6Only: false, reuseAddr: false });
  const limiter = new RateLimiter();
  const now = o.now ?? Date.now;
  const sign = (bytes: Uint8Array) => Buffer.from(signMessage(o.identity, bytes), "base64");

  socket.on("message", (msg, rinfo) => {
    const req = parseRequest(msg);
    if (!req || !limiter.allow(rinfo.address, now())) {
      o.metrics.reflectorDropped++;
      return;
    }
    const reply = encodeReply(req.nonce, observedFrom(rinfo), sign);
    socket.send(reply, rinfo.port, rinfo.address);
    o.metrics.reflectorReplies++;
  });
  socket.on("error", (err) => o.log.warn("reflector socket error", { port: o.port, err: err.message }));
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ address: o.host, port: o.port }, () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}
