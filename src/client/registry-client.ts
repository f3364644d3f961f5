/**
 * The member side of the registry API, used by the edge daemon and the CLI.
 * Every request is signed with the peer's identity key (src/crypto/signing.ts);
 * every answer and event is validated against src/core/protocol.ts, so code
 * behind this client only ever sees well-formed records.
 */
import { sleep, systemClock, systemRandom, type Clock, type Random } from "../core/clock.js";
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
  type PostMessage,
} from "../core/protocol.js";
import { peerIdOf, type Identity } from "../crypto/keys.js";
import { signRequest } from "../crypto/signing.js";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { call, errorFrom, isUnreachable, jsonBody, send, type HttpTransport, type Target } from "./http.js";
import { RegistryList } from "./registry-list.js";
import { SseParser } from "./sse.js";
import { z } from "zod";

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
export const RECONNECT_UNREACHABLE_MAX_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;

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

  constructor(private readonly opts: RegistryClientOptions) {
    this.registries = new RegistryList(opts.url);
    this.target = this.newTarget();
    this.peerId = peerIdOf(opts.identity.publicKey);
    this.base = `${API_PREFIX}/networks/${encodeURIComponent(opts.network)}`;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? systemRandom;
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
    const url = this.registries.current;
    const { transport } = this.opts;
    return transport ? { url, transport } : { url, agent: newAgent(url) };
  }

  /**
   * After a failure that is the registry's (no answer, or 5xx): move to the
   * next registry of the list, if any. True when the target changed.
   */
  private failover(e: unknown): boolean {
    const theirs =
      isUnreachable(e) || (e instanceof ScopeError && e.code === "unavailable") || !(e instanceof ScopeError);
    if (!theirs || !this.target.url || !this.registries.failed(this.target.url)) return false;
    const old = this.target.agent;
    this.target = this.newTarget();
    old?.destroy();
    return true;
  }

  /**
   * Follows the event stream until signal aborts (then resolves), resuming
   * with Last-Event-ID after every disconnect. Rejects only on errors a retry
   * cannot fix (no longer a member, network gone, bad request).
   */
  async events(o: EventsOptions): Promise<void> {
    let last = o.lastEventId;
    let delay = RECONNECT_MIN_MS;
    while (!o.signal.aborted) {
      const conn = new AbortController();
      this.streamAbort = conn;
      const stop = () => conn.abort();
      o.signal.addEventListener("abort", stop, { once: true });
      try {
        await this.streamOnce(
          { ...o, signal: conn.signal },
          last,
          (id) => (last = id),
          () => (delay = RECONNECT_MIN_MS),
        );
        if (o.signal.aborted) return;
        throw new ScopeError("unavailable", "event stream ended", { cause: { code: "EOF" } });
      } catch (e) {
        if (o.signal.aborted) return;
        // dropConnections(), or another registry of the list to try: reconnect at once.
        const dropped = conn.signal.aborted || this.failover(e);
        if (e instanceof ScopeError && FATAL_CODES.has(e.code)) throw e;
        // No answer at all (or the stream broke mid-way): the registry is down or
        // restarting; retrying is cheap for it, so keep the delay short.
        const cheap = isUnreachable(e) || !(e instanceof ScopeError);
        const wait = dropped ? 0 : Math.round(delay * (0.5 + this.random() / 2));
        o.onDisconnect?.(dropped ? new Error("connections dropped") : (e as Error), wait);
        if (wait > 0) await sleep(this.clock, wait, o.signal);
        delay = Math.min(cheap ? RECONNECT_UNREACHABLE_MAX_MS : RECONNECT_MAX_MS, delay * 2);
      } finally {
        o.signal.removeEventListener("abort", stop);
        if (this.streamAbort === conn) this.streamAbort = undefined;
      }
    }
  }

  private async streamOnce(
    o: EventsOptions,
    after: number | undefined,
    advance: (id: number) => void,
    connected: () => void,
  ) {
    const path = `${this.base}/events`;
    const headers = {
      ...signRequest(this.opts.identity, this.peerId, { method: "GET", path, body: "" }, this.clock.now()),
      accept: "text/event-stream",
      ...(after !== undefined ? { "last-event-id": String(after) } : {}),
    };
    const res = await send(this.target, { method: "GET", path, headers, signal: o.signal });
    if ((res.statusCode ?? 0) !== 200) throw await errorFrom(res);
    // Events are handled one at a time, in order, even when a handler is async.
    let chain: Promise<void> = Promise.resolve();
    const parser = new SseParser((m) => {
      chain = chain.then(async () => {
        if (m.event === "message") {
          const parsed = Event.safeParse(parseJson(m.data));
          if (parsed.success) await o.onEvent(parsed.data);
          advance(Number(m.lastEventId)); // a malformed event is skipped, not re-fetched forever
        } else if (m.event === "ready" || m.event === "resync") {
          const c = StreamControl.parse(parseJson(m.data));
          if (m.event === "resync") await o.onResync?.(c.lastEventId, c.reason);
          advance(c.lastEventId);
          if (m.event === "ready") {
            connected();
            o.onReady?.(c.lastEventId);
          }
        }
      });
    });
    for await (const chunk of res) {
      parser.push(chunk);
      await chain;
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
const newAgent = (url: string): HttpAgent =>
  url.startsWith("https:") ? new HttpsAgent(AGENT_OPTIONS) : new HttpAgent(AGENT_OPTIONS);

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};
