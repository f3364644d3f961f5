/**
 * The member side of the registry API, used by the edge daemon and the CLI.
 * Every request is signed with the peer's identity key (src/crypto/signing.ts);
 * every answer and event is validated against src/core/protocol.ts, so code
 * behind this client only ever sees well-formed records.
 */
import { sleep, systemClock, systemRandom, type Clock, type Random, type TimerId } from "../core/clock.js";
import { ScopeError } from "../core/errors.js";
import {
  API_PREFIX,
  Event,
  JoinResponse,
  MessageAccepted,
  Peer,
  PeerList,
  StreamControl,
  type PeerInput,
  type PeerUpdate,
  type PathReport,
  type PathView,
  type PostMessage,
} from "../core/protocol.js";
import { peerIdOf, type Identity } from "../crypto/keys.js";
import { signRequest } from "../crypto/signing.js";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { call, errorFrom, isUnreachable, jsonBody, send, type HttpTransport, type Target } from "./http.js";
import { RegistryList, type Candidate, type Resolver } from "./registry-list.js";
import { isIP, type LookupFunction } from "node:net";
import { SseParser } from "./sse.js";
import { z } from "zod";
import type { TlsTrust } from "./tls.js";

export interface RegistryClientOptions {
  /** Base URL, e.g. "https://reg.example:8470", or several, comma-separated (registry-list.ts). */
  url: string;
  network: string;
  identity: Identity;
  /** Signing timestamps and reconnect waits (default: the system clock). */
  clock?: Clock;
  /** Reconnect jitter (default: Math.random). */
  random?: Random;
  /** Carries requests instead of node:http (default: none, a keep-alive agent per client). */
  transport?: HttpTransport;
  /** CA and pin for an https URL (tls.ts); default: the system's CAs. */
  tls?: TlsTrust;
  /** Addresses of a registry's DNS name, each a registry to fail over to (default: dns.lookup). */
  resolve?: Resolver;
}

export interface EventsOptions {
  /** Resume after this id (JoinResponse.lastEventId, or the last one handled); omit for live only. */
  lastEventId?: number;
  onEvent(e: Event): void | Promise<void>;
  /** The resume point was gone: re-read the peer list, then carry on (events follow from `lastEventId`). */
  onResync?(lastEventId: number, reason: string | undefined): void | Promise<void>;
  /** Replay done, the stream is live (after every (re)connect). */
  onReady?(lastEventId: number): void;
  /** A reconnect is coming after this error. */
  onDisconnect?(err: Error, retryInMs: number): void;
  /** Counters for status (the same object, updated in place). */
  stats?: StreamStats;
  signal: AbortSignal;
}

/**
 * Reconnect delays, with jitter so a restarted registry is not stampeded.
 * When the registry gives no answer at all (refused, unreachable: it is down
 * or restarting), a retry costs it nothing, so the delay stays at most
 * RECONNECT_UNREACHABLE_MAX_MS and the stream is back within about a second
 * of the registry (docs/join.md: resync within 5 s). When it does answer
 * with an error (overloaded, 5xx), back off by doubling up to the cap.
 */
export const RECONNECT_MIN_MS = 500;
/**
 * The registry sends a heartbeat every 15 s (src/registry/events.ts
 * HEARTBEAT_MS) when it has nothing else to send. A stream silent for two
 * heartbeats and a bit is dead, even if TCP still thinks it is open (a
 * half-open connection after a path silently drops packets lasts until
 * keepalive gives up, about two hours): reconnect. Within 45 s of the last
 * byte the daemon says so (issue 14, acceptance 4).
 */
export const STREAM_SILENCE_MS = 35_000;
/** The stream's headers come before any replay: a registry that does not send them soon is not there. */
export const STREAM_CONNECT_MS = 10_000;
export const RECONNECT_UNREACHABLE_MAX_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;

/** What `scope status` shows of the event stream, and what a lab test checks after an outage. */
export interface StreamStats {
  /** The last event id handled (the resume point). */
  lastEventId: number | undefined;
  /** Events handed to onEvent. */
  delivered: number;
  /** Events that came again with an id at or below the resume point: dropped, not handled twice. */
  repeated: number;
  /** Streams that were found silent (no byte, not even a heartbeat, for STREAM_SILENCE_MS). */
  silent: number;
  reconnects: number;
}

export const newStreamStats = (lastEventId?: number): StreamStats => ({
  lastEventId,
  delivered: 0,
  repeated: 0,
  silent: 0,
  reconnects: 0,
});

/** Errors that a reconnect cannot cure: stop instead of retrying forever. */
const FATAL_CODES = new Set(["unauthorized", "forbidden", "not_found", "bad_request", "gone"]);

export class RegistryClient {
  readonly peerId: string;
  private target: Target;
  private readonly base: string;
  private readonly clock: Clock;
  private readonly random: Random;
  /** Aborts every request still under way when the client is closed. */
  private readonly closed = new AbortController();
  /** Counts dropConnections(): a request cut by one is sent again on the new pool. */
  private generation = 0;
  /** Aborts the current event stream connection (not the whole follow): see dropConnections. */
  private streamAbort: AbortController | undefined;
  private readonly registries: RegistryList;
  /** The registry of the list that target points at. */
  private candidate: Candidate = { url: "" };

  constructor(private readonly opts: RegistryClientOptions) {
    this.registries = new RegistryList(opts.url, opts.resolve);
    this.target = this.newTarget();
    this.peerId = peerIdOf(opts.identity.publicKey);
    this.base = `${API_PREFIX}/networks/${encodeURIComponent(opts.network)}`;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? systemRandom;
  }

  /** The registry in use: the first of the list until it fails (registry-list.ts). */
  get currentUrl(): string {
    return this.candidate.url;
  }

  /** Joins with a join token; proves possession of the identity key by signing as peer "join". */
  join(token: string, peer: Omit<PeerInput, "identityKey">): Promise<JoinResponse> {
    const body = { token, peer: { ...peer, identityKey: this.opts.identity.publicKey } };
    return this.request("POST", "/join", JoinResponse, body, "join");
  }

  async listPeers(): Promise<Peer[]> {
    return (await this.request("GET", "/peers", PeerList)).peers;
  }

  updateSelf(update: PeerUpdate): Promise<Peer> {
    return this.request("PUT", "/peers/self", Peer, update);
  }

  async leave(): Promise<void> {
    await this.request("DELETE", "/peers/self", z.undefined());
  }

  /** This peer's view of its peers, for the registry's web view (src/daemon/path-reporter.ts). */
  async reportPaths(views: PathView[]): Promise<void> {
    await this.request("PUT", "/paths", z.undefined(), { views } satisfies PathReport);
  }

  /** Relays a message; resolves with its event id. */
  async postMessage(msg: PostMessage): Promise<number> {
    return (await this.request("POST", "/messages", MessageAccepted, msg)).id;
  }

  /**
   * Drops every pooled connection and the event stream's, so the next
   * requests and a new stream start at once from the host's current
   * addresses. Call after the local addresses changed: a kept-alive TCP
   * connection still carries the old source address and would hang until a
   * timeout.
   */
  dropConnections(): void {
    this.generation++;
    const old = this.target.agent;
    this.target = this.newTarget();
    old?.destroy();
    this.streamAbort?.abort();
  }

  /** Gives up every request under way and frees the connection pool (the daemon is stopping). */
  close(): void {
    this.closed.abort();
    this.target.agent?.destroy();
  }

  private newTarget(): Target {
    this.candidate = this.registries.current;
    const { url } = this.candidate;
    const { transport, tls } = this.opts;
    return transport ? { url, transport } : { url, agent: newAgent(this.candidate), ...(tls ? { tls } : {}) };
  }

  /** Points requests at the list's current registry, on a pool of its own. */
  private retarget(): void {
    const old = this.target.agent;
    this.target = this.newTarget();
    old?.destroy();
  }

  /** DNS names of the list expanded into one registry per address (registry-list.ts), before a connect. */
  private async followList(): Promise<void> {
    if (this.opts.transport) return; // an in-process transport has no addresses
    await this.registries.resolveNames();
    const c = this.registries.current;
    if (c.url !== this.candidate.url || c.address !== this.candidate.address) this.retarget();
  }

  /**
   * After a failure that is the registry's (no answer, or 5xx): move to the
   * next registry of the list, if any. True when the target changed.
   */
  private failover(e: unknown): boolean {
    const theirs =
      isUnreachable(e) || (e instanceof ScopeError && e.code === "unavailable") || !(e instanceof ScopeError);
    if (!theirs || !this.registries.failed(this.candidate)) return false;
    this.retarget();
    return true;
  }

  /**
   * Follows the event stream until signal aborts (then resolves), resuming
   * with Last-Event-ID after every disconnect. Rejects only on errors a retry
   * cannot fix (no longer a member, network gone, bad request).
   */
  async events(o: EventsOptions): Promise<void> {
    const stats = o.stats ?? newStreamStats(o.lastEventId);
    stats.lastEventId = o.lastEventId;
    let delay = RECONNECT_MIN_MS;
    while (!o.signal.aborted) {
      const conn = new AbortController();
      this.streamAbort = conn;
      const stop = () => conn.abort();
      o.signal.addEventListener("abort", stop, { once: true });
      // Fires when the stream says nothing for too long: then it is as good as gone.
      let silent = false;
      const watchdog = new Watchdog(this.clock, () => {
        silent = true;
        conn.abort();
      });
      try {
        await this.streamOnce(
          { ...o, signal: conn.signal },
          stats,
          watchdog,
          () => (delay = RECONNECT_MIN_MS),
        );
        if (o.signal.aborted) return;
        throw new ScopeError("unavailable", "event stream ended", { cause: { code: "EOF" } });
      } catch (e) {
        if (o.signal.aborted) return;
        if (e instanceof ScopeError && FATAL_CODES.has(e.code)) throw e;
        // dropConnections(), or another registry of the list to try: reconnect at once.
        const dropped = (conn.signal.aborted && !silent) || this.failover(e);
        if (silent) stats.silent++;
        // No answer at all (or the stream broke mid-way): the registry is down or
        // restarting; retrying is cheap for it, so keep the delay short.
        const cheap = silent || isUnreachable(e) || !(e instanceof ScopeError);
        const wait = dropped ? 0 : Math.round(delay * (0.5 + this.random() / 2));
        const why = silent
          ? new ScopeError("unavailable", `event stream silent for ${watchdog.silenceMs / 1000} s`)
          : dropped
            ? new Error("connections dropped")
            : (e as Error);
        o.onDisconnect?.(why, wait);
        if (wait > 0) await sleep(this.clock, wait, o.signal);
        delay = Math.min(cheap ? RECONNECT_UNREACHABLE_MAX_MS : RECONNECT_MAX_MS, delay * 2);
        stats.reconnects++;
      } finally {
        watchdog.stop();
        o.signal.removeEventListener("abort", stop);
        if (this.streamAbort === conn) this.streamAbort = undefined;
      }
    }
  }

  private async streamOnce(o: EventsOptions, stats: StreamStats, watchdog: Watchdog, connected: () => void) {
    const path = `${this.base}/events`;
    const after = stats.lastEventId;
    const headers = {
      ...signRequest(this.opts.identity, this.peerId, { method: "GET", path, body: "" }, this.clock.now()),
      accept: "text/event-stream",
      ...(after !== undefined ? { "last-event-id": String(after) } : {}),
    };
    watchdog.feed(STREAM_CONNECT_MS);
    await this.followList();
    const res = await send(this.target, { method: "GET", path, headers, signal: o.signal });
    if ((res.statusCode ?? 0) !== 200) throw await errorFrom(res);
    watchdog.feed(STREAM_SILENCE_MS);
    // Events are handled one at a time, in order, even when a handler is async.
    let chain: Promise<void> = Promise.resolve();
    const parser = new SseParser((m) => {
      chain = chain.then(async () => {
        if (m.event === "message") {
          const id = Number(m.lastEventId);
          // At or below the resume point: handled already (a replay overlapping a live
          // event after a reconnect). Handling it twice would apply it twice.
          if (stats.lastEventId !== undefined && id <= stats.lastEventId) return void stats.repeated++;
          const parsed = Event.safeParse(parseJson(m.data));
          if (parsed.success) {
            await o.onEvent(parsed.data);
            stats.delivered++;
          }
          stats.lastEventId = id; // a malformed event is skipped, not re-fetched forever
        } else if (m.event === "ready" || m.event === "resync") {
          const c = StreamControl.parse(parseJson(m.data));
          if (m.event === "resync") await o.onResync?.(c.lastEventId, c.reason);
          stats.lastEventId = c.lastEventId;
          if (m.event === "ready") {
            connected();
            o.onReady?.(c.lastEventId);
          }
        }
      });
    });
    try {
      for await (const chunk of res) {
        watchdog.feed(STREAM_SILENCE_MS); // any byte, a heartbeat too, proves the path
        parser.push(chunk);
        await chain;
      }
    } finally {
      // What arrived before the break is handled before the resume point is read again.
      await chain.catch(() => undefined);
    }
  }

  private async request<S extends z.ZodType>(
    method: string,
    suffix: string,
    schema: S,
    body?: unknown,
    signAs = this.peerId,
  ): Promise<z.output<S>> {
    const path = this.base + suffix;
    const raw = body === undefined ? Buffer.alloc(0) : jsonBody(body);
    // Signed per attempt: a retry carries a fresh timestamp, never a replayed signature.
    const attempt = () => {
      const headers: Record<string, string> = {
        ...signRequest(this.opts.identity, signAs, { method, path, body: raw }, this.clock.now()),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      };
      return call(
        this.target,
        { method, path, headers, body: body === undefined ? undefined : raw, signal: this.closed.signal },
        schema,
      );
    };
    await this.followList();
    const gen = this.generation;
    try {
      return await attempt();
    } catch (e) {
      // Cut by dropConnections() (the host moved): send it again from the new address.
      if (this.generation !== gen && isUnreachable(e)) return attempt();
      // Refused or unreachable: this registry never saw it, so the next of the list may take it.
      if (isUnreachable(e) && this.failover(e)) return attempt();
      throw e;
    }
  }
}

/**
 * Like Node's global agent: keep-alive, and an idle timeout (lowered to the
 * server's Keep-Alive hint) so a socket the server is about to close is not
 * reused. Without `timeout` the hint is ignored and requests hit ECONNRESET.
 */
const AGENT_OPTIONS = { keepAlive: true, timeout: 5_000, scheduling: "lifo" } as const;
const newAgent = (c: Candidate): HttpAgent => {
  const opts =
    c.address === undefined ? AGENT_OPTIONS : { ...AGENT_OPTIONS, lookup: pinnedLookup(c.address) };
  return c.url.startsWith("https:") ? new HttpsAgent(opts) : new HttpAgent(opts);
};

/** A lookup that answers every name with one address: the candidate's, so a reconnect stays on it. */
const pinnedLookup =
  (address: string): LookupFunction =>
  (_host, options, callback) => {
    const family = isIP(address);
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };

/** One timer, pushed back by feed(); calls fire() when it runs out. */
class Watchdog {
  private timer: TimerId | undefined;
  silenceMs = 0;
  constructor(
    private readonly clock: Clock,
    private readonly fire: () => void,
  ) {}
  feed(ms: number): void {
    this.stop();
    this.silenceMs = ms;
    this.timer = this.clock.setTimer(ms, () => {
      this.timer = undefined;
      this.fire();
    });
  }
  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};
