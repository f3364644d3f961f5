/**
 * Quotas and rate limits for the registry's TCP API (issue 14). Counting is
 * rate-limiter-flexible's: a fixed window of `points` per `duration` per
 * key. Where the counts live is the one seam, `LimiterFactory`: memory for
 * one registry (now), rate-limiter-flexible's PostgreSQL store for several
 * replicas sharing counts (RateLimiterPostgres takes the same options plus
 * a pool), without anything above this file changing.
 *
 * Keys are the source address (an IPv6 address by its /64: one host gets a
 * whole /64, so a per-address limit on full addresses would be no limit)
 * and the member id. A member's quota is charged only once its signature
 * verified, so nobody can spend another member's quota by naming it.
 * Requests on the admin socket are not limited.
 */
import type { ServerResponse } from "node:http";
import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { ScopeError } from "../core/errors.js";
import { formatIpv6, maskPrefix, normalizeAddress, tryParseIpv6 } from "../core/ip.js";

/** The rates the registry enforces; `points` 0 turns one off. */
export interface Rate {
  points: number;
  /** Window length in seconds. */
  duration: number;
}

export interface LimitsConfig {
  /** /join attempts per source address, successful or not. */
  joinPerAddress: Rate;
  /** /join attempts per identity key (peer id). */
  joinPerPeer: Rate;
  /** Every request on the TCP port (joins, signed requests, streams) per source address. */
  requestPerAddress: Rate;
  /** Signed requests per member, counted after the signature verified. */
  requestPerPeer: Rate;
  /** POST /messages per member: what bounds the events table between prunes. */
  messagePerPeer: Rate;
  /** PUT /paths per member (the web view's path reports; a daemon sends at most one every 2 s). */
  reportPerPeer: Rate;
  /** Event streams open at once per member. */
  streamsPerPeer: number;
}

export type LimitName = Exclude<keyof LimitsConfig, "streamsPerPeer">;

/** A registry of a few thousand hosts never comes near these; a flood does. */
export const DEFAULT_LIMITS: LimitsConfig = {
  joinPerAddress: { points: 60, duration: 60 },
  joinPerPeer: { points: 10, duration: 60 },
  requestPerAddress: { points: 6000, duration: 60 },
  requestPerPeer: { points: 1200, duration: 60 },
  messagePerPeer: { points: 600, duration: 60 },
  reportPerPeer: { points: 120, duration: 60 },
  streamsPerPeer: 4,
};

/** The storage seam: one limiter per rate (keyPrefix keeps them apart in a shared store). */
export type LimiterFactory = (opts: {
  keyPrefix: string;
  points: number;
  duration: number;
}) => Pick<RateLimiterAbstract, "consume">;

export const memoryLimiters: LimiterFactory = (opts) => new RateLimiterMemory(opts);

/** A 429 with the seconds to wait; the error middleware turns retryAfterS into Retry-After. */
export class RateLimitedError extends ScopeError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super("rate_limited", `${message}; retry in ${retryAfterS} s`);
  }
}

const WHAT: Record<LimitName, string> = {
  joinPerAddress: "too many joins from this address",
  joinPerPeer: "too many joins with this identity key",
  requestPerAddress: "too many requests from this address",
  requestPerPeer: "too many requests from this member",
  messagePerPeer: "too many messages from this member",
  reportPerPeer: "too many path reports from this member",
};

/** The key a source address is counted under: IPv4 as is, IPv6 by its /64. */
export function addressKey(ip: string): string {
  const address = normalizeAddress(ip);
  if (!address.includes(":")) return address;
  const b = tryParseIpv6(address);
  if (!b) return address;
  return `${formatIpv6(maskPrefix({ family: "ipv6", bytes: b, bits: 64 }).bytes)}/64`;
}

export class Limits {
  private readonly limiters = new Map<LimitName, Pick<RateLimiterAbstract, "consume">>();
  private readonly streams = new Map<string, number>();

  constructor(
    readonly config: LimitsConfig = DEFAULT_LIMITS,
    make: LimiterFactory = memoryLimiters,
  ) {
    for (const name of Object.keys(WHAT) as LimitName[]) {
      const r = config[name];
      if (r.points > 0) this.limiters.set(name, make({ keyPrefix: name, ...r }));
    }
  }

  /** Charges one point to key under `name`; throws RateLimitedError past the limit. */
  async take(name: LimitName, key: string): Promise<void> {
    const limiter = this.limiters.get(name);
    if (!limiter) return;
    try {
      await limiter.consume(key);
    } catch (e) {
      // Rejected with a RateLimiterRes when over; anything else is the store failing.
      if (!(e instanceof RateLimiterRes)) throw e;
      throw new RateLimitedError(WHAT[name], Math.max(1, Math.ceil(e.msBeforeNext / 1000)));
    }
  }

  /** Counts an event stream of a member while res is open; 429 past streamsPerPeer. */
  openStream(key: string, res: ServerResponse): void {
    const max = this.config.streamsPerPeer;
    if (max <= 0) return;
    const open = this.streams.get(key) ?? 0;
    if (open >= max) {
      throw new RateLimitedError(`${max} event streams open for this member already`, 5);
    }
    this.streams.set(key, open + 1);
    res.once("close", () => {
      const n = (this.streams.get(key) ?? 1) - 1;
      if (n <= 0) this.streams.delete(key);
      else this.streams.set(key, n);
    });
  }
}
