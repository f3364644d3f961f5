/**
 * The one place where anything thrown while handling a request becomes an
 * HTTP answer (koa's docs/error-handling.md: a try/catch at the top of the
 * chain). ScopeError keeps its code and status; zod errors are 400 naming
 * the field; koa/router errors carrying a 4xx status keep it; everything
 * else is a 500 with the message hidden and logged under a request id.
 */
import { randomBytes } from "node:crypto";
import type { Middleware } from "koa";
import { z } from "zod";
import { ERROR_CODES, ScopeError, isScopeError, type ErrorCode } from "../core/errors.js";
import type { ErrorBody } from "../core/protocol.js";
import type { RegistryLogger } from "./deps.js";

export interface ErrorResponse {
  status: number;
  body: ErrorBody;
  /** Unexpected: log it with the stack. */
  internal: boolean;
}

/** For errors from koa or the router: the first request-problem code (exit 1) listed for the status. */
const codeByStatus = new Map<number, ErrorCode>();
for (const [code, { status, exit }] of Object.entries(ERROR_CODES) as [
  ErrorCode,
  { status: number; exit: number },
][]) {
  if (exit === 1 && !codeByStatus.has(status)) codeByStatus.set(status, code);
}

/** "peer.candidates.0.port: Too big: expected number to be <=65535" — one line, first issue only. */
export function zodMessage(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return "invalid input";
  const where = issue.path.length ? issue.path.map(String).join(".") : "body";
  const more = err.issues.length > 1 ? ` (and ${err.issues.length - 1} more)` : "";
  return `${where}: ${issue.message}${more}`.replace(/\s+/g, " ");
}

export function toErrorResponse(err: unknown, requestId: string): ErrorResponse {
  if (isScopeError(err))
    return { status: err.status, body: { error: err.code, message: err.message }, internal: false };
  if (err instanceof z.ZodError)
    return { status: 400, body: { error: "bad_request", message: zodMessage(err) }, internal: false };
  if (err instanceof URIError) {
    return {
      status: 400,
      body: { error: "bad_request", message: "malformed percent-encoding in the path" },
      internal: false,
    };
  }
  // koa's ctx.throw / http-errors from the router: trust 4xx they mark as exposable.
  const e = err as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof e?.status === "number" && e.status >= 400 && e.status < 500) {
    const code = codeByStatus.get(e.status) ?? "bad_request";
    const message = e.expose && typeof e.message === "string" ? e.message : code.replace(/_/g, " ");
    return { status: e.status, body: { error: code, message }, internal: false };
  }
  return {
    status: 500,
    body: { error: "internal", message: `internal error (request ${requestId})` },
    internal: true,
  };
}

export const newRequestId = (): string => randomBytes(6).toString("hex");

export function errorMiddleware(log: RegistryLogger, onStatus: (status: number) => void): Middleware {
  return async (ctx, next) => {
    const requestId = newRequestId();
    ctx.state.requestId = requestId;
    ctx.set("x-request-id", requestId);
    try {
      await next();
      if (ctx.respond !== false && ctx.status === 404 && ctx.body === undefined) {
        throw new ScopeError("not_found", `no route for ${ctx.method} ${ctx.path.slice(0, 200)}`);
      }
    } catch (err) {
      const r = toErrorResponse(err, requestId);
      if (r.internal) {
        log.error("request failed", {
          requestId,
          method: ctx.method,
          path: ctx.path.slice(0, 200),
          err: String(err),
          stack: (err as Error)?.stack,
        });
      }
      if (ctx.headerSent || !ctx.writable) {
        ctx.res.destroy();
        onStatus(r.status);
        return;
      }
      ctx.status = r.status;
      ctx.body = r.body;
      // A 429 says when to come back (limits.ts: RateLimitedError).
      const retry = (err as { retryAfterS?: unknown }).retryAfterS;
      if (r.status === 429 && typeof retry === "number") ctx.set("retry-after", String(retry));
    }
    onStatus(ctx.respond === false ? 200 : ctx.status);
  };
}
