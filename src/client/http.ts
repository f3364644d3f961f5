/**
 * The HTTP plumbing the registry clients share: one request over TCP, TLS or
 * a Unix socket (node:http, since fetch cannot reach a socket path), the
 * answer validated against a protocol schema, and every failure turned into a
 * ScopeError: the server's own code for a 4xx/5xx JSON body, `unavailable`
 * when the registry cannot be reached.
 */
import { request as httpRequest, type Agent, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { z } from "zod";
import { ERROR_CODES, ScopeError, type ErrorCode } from "../core/errors.js";
import { ErrorBody } from "../core/protocol.js";
import { tlsRequestOptions, tlsTrustProblem, type TlsTrust } from "./tls.js";

/**
 * Where the registry is: a base URL (http/https) or the admin Unix socket.
 * agent: the connection pool to use (default: Node's global one). A client
 * that must be able to drop its pooled connections at once (the edge daemon
 * after its addresses changed: a kept-alive socket still carries the old
 * source address) brings its own.
 */
export type Target =
  | { url: string; socketPath?: undefined; agent?: Agent; transport?: HttpTransport; tls?: TlsTrust }
  | { socketPath: string; url?: undefined; agent?: undefined; transport?: undefined; tls?: undefined };

/** What callers read of an answer: an IncomingMessage has it, and so does an in-process transport's. */
export interface HttpResponse extends AsyncIterable<Buffer> {
  readonly statusCode?: number | undefined;
  destroy(): void;
}

/**
 * Carries a request instead of node:http (the daemon simulator: a koa app
 * called in-process). Resolves once the answer's head is there; rejects
 * with a ScopeError, an AbortError, or an error with a `code` for "no
 * answer at all" (treated as unreachable).
 */
export type HttpTransport = (req: HttpRequest) => Promise<HttpResponse>;

export interface HttpRequest {
  method: string;
  /** Path and query, e.g. "/v1/networks/corp/peers". */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  signal?: AbortSignal;
  /** Gives up when no answer has started by then. */
  timeoutMs?: number;
}

/** Answers are small JSON; the limit only protects the client from a broken or hostile server. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;

/** The registry gave no HTTP answer at all (refused, unreachable, reset, timed out). */
class UnreachableError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

/**
 * True when err means no HTTP answer came at all (connection refused, host
 * unreachable, reset, timeout), as opposed to an answer with an error status.
 * Retrying such a failure costs the registry nothing.
 */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof ScopeError) || err.code !== "unavailable") return false;
  const cause = err.cause as { code?: unknown } | undefined;
  return typeof cause?.code === "string";
}

export const describeTarget = (t: Target): string => t.url ?? `unix:${t.socketPath}`;

/** Sends one request; resolves with the response once its headers arrived (the body is not read). */
export function send(target: Target, req: HttpRequest): Promise<HttpResponse> {
  if (target.transport) return viaTransport(target, target.transport, req);
  return sendOnce(target, req).catch((e: unknown) => {
    // A kept-alive connection the server closed just as we reused it: the
    // request never reached it, so one retry on a fresh connection is safe.
    if (e instanceof ScopeError && (e.cause as { reused?: boolean } | undefined)?.reused === true)
      return sendOnce(target, req);
    throw e;
  });
}

async function viaTransport(target: Target, t: HttpTransport, req: HttpRequest): Promise<HttpResponse> {
  try {
    return await t(req);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err instanceof ScopeError || err.name === "AbortError") throw err;
    throw new ScopeError(
      "unavailable",
      `cannot reach registry at ${describeTarget(target)}: ${err.code ?? err.message}`,
      { cause: new UnreachableError(err.code ?? "ECONNREFUSED") },
    );
  }
}

function sendOnce(target: Target, req: HttpRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers, ...(req.body ? { "content-length": String(req.body.length) } : {}) };
    let r;
    if (target.socketPath !== undefined) {
      r = httpRequest({
        socketPath: target.socketPath,
        method: req.method,
        path: req.path,
        headers,
        signal: req.signal,
      });
    } else {
      const base = new URL(target.url);
      const opts = {
        hostname: base.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: base.port || (base.protocol === "https:" ? 443 : 80),
        method: req.method,
        path: base.pathname.replace(/\/$/, "") + req.path,
        headers,
        signal: req.signal,
        ...(target.agent ? { agent: target.agent } : {}),
        ...(base.protocol === "https:" ? tlsRequestOptions(target.tls) : {}),
      };
      r = base.protocol === "https:" ? httpsRequest(opts) : httpRequest(opts);
    }
    r.setTimeout(req.timeoutMs ?? DEFAULT_TIMEOUT_MS, () =>
      r.destroy(
        new ScopeError("unavailable", `no answer from ${describeTarget(target)} in time`, {
          cause: new UnreachableError("ETIMEDOUT"),
        }),
      ),
    );
    let responded = false;
    r.on("response", (res) => {
      responded = true;
      r.setTimeout(0);
      resolve(res);
    });
    r.on("error", (e: Error & { code?: string; reused?: boolean }) => {
      if (r.reusedSocket && !responded && e.code === "ECONNRESET") e.reused = true;
      const untrusted = tlsTrustProblem(describeTarget(target), e.code);
      if (e instanceof ScopeError || e.name === "AbortError") reject(e);
      // Not "unreachable": retrying at once will not make the certificate trusted.
      else if (untrusted) reject(new ScopeError("unavailable", untrusted));
      else
        reject(
          new ScopeError(
            "unavailable",
            `cannot reach registry at ${describeTarget(target)}: ${e.code ?? e.message}`,
            { cause: e },
          ),
        );
    });
    r.end(req.body);
  });
}

export async function readAll(res: HttpResponse, limit = MAX_RESPONSE_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += chunk.length;
    if (size > limit) {
      res.destroy();
      throw new ScopeError("bad_request", `registry answer over ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A ScopeError from an error answer; the code is the server's if this client knows it. */
export async function errorFrom(res: HttpResponse): Promise<ScopeError> {
  const status = res.statusCode ?? 0;
  let body: ErrorBody | undefined;
  try {
    body = ErrorBody.parse(JSON.parse((await readAll(res, 64 * 1024)).toString("utf8")));
  } catch {
    body = undefined;
  }
  const known = body && Object.hasOwn(ERROR_CODES, body.error) ? (body.error as ErrorCode) : undefined;
  const code = known ?? (status >= 500 ? "unavailable" : "bad_request");
  return new ScopeError(code, body?.message ?? `registry answered HTTP ${status}`);
}

/** One request with a JSON answer (or none, for 204) checked against schema. */
export async function call<S extends z.ZodType>(
  target: Target,
  req: HttpRequest,
  schema: S,
): Promise<z.output<S>> {
  const res = await send(target, req);
  if ((res.statusCode ?? 0) >= 400) throw await errorFrom(res);
  const text = (await readAll(res)).toString("utf8");
  let value: unknown;
  try {
    value = text === "" ? undefined : JSON.parse(text);
  } catch {
    throw new ScopeError("bad_request", `registry answer is not JSON (HTTP ${res.statusCode})`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ScopeError(
      "bad_request",
      `registry answer does not match the protocol: ${parsed.error.issues[0]?.message}`,
    );
  }
  return parsed.data;
}

export const jsonBody = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), "utf8");
