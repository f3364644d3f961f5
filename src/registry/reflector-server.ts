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
/** Bounds the limiter's memory under a spoofed-source flood; a full table is forgotten at once. */
const MAX_TRACKED_SOURCES = 50_000;

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst = BURST,
    private readonly ratePerS = RATE_PER_S,
  ) {}

  allow(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_TRACKED_SOURCES) this.buckets.clear();
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerS);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
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
