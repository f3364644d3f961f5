/**
 * Request bodies, read by hand rather than through a body-parser: the raw
 * bytes are needed for signature checks, and the limits must hold before a
 * single byte is parsed.
 *
 * - Content-Length above MAX_BODY_BYTES: 413 at once; a streamed body is
 *   counted and cut off at the limit (413) as well.
 * - Bytes that are not UTF-8: 400 (TextDecoder in fatal mode).
 * - Not JSON, or a media type other than application/json: 400 / 415.
 */
import type { Context } from "koa";
import type { z } from "zod";
import { ScopeError } from "../core/errors.js";
import { MAX_BODY_BYTES } from "../core/protocol.js";

const RAW = Symbol("rawBody");
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The raw body, read once per request and cached (auth and parsing both need it). */
export function readRawBody(ctx: Context, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const state = ctx.state as { [RAW]?: Promise<Buffer> };
  state[RAW] ??= collect(ctx, limit);
  return state[RAW];
}

function collect(ctx: Context, limit: number): Promise<Buffer> {
  const declared = ctx.get("content-length");
  if (declared !== "" && !/^[0-9]{1,15}$/.test(declared)) {
    return Promise.reject(new ScopeError("bad_request", "malformed Content-Length"));
  }
  if (declared !== "" && Number(declared) > limit) {
    return Promise.reject(new ScopeError("payload_too_large", `body over ${limit} bytes`));
  }
  const req = ctx.req;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering; node drains (discards) the rest after the 413 is sent.
        chunks.length = 0;
        done(new ScopeError("payload_too_large", `body over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done();
    const onError = (e: Error) =>
      done(new ScopeError("bad_request", `reading the body failed: ${e.message}`));
    const onAborted = () => done(new ScopeError("bad_request", "request aborted"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
    if (req.readableEnded) done();
  });
}

/** Parses a JSON body and validates it; every failure is a 4xx. */
export async function readJson<S extends z.ZodType>(ctx: Context, schema: S): Promise<z.output<S>> {
  const type = ctx.get("content-type");
  const [media, ...params] = type.split(";").map((s) => s.trim().toLowerCase());
  if (media !== "application/json") {
    throw new ScopeError(
      "unsupported_media_type",
      `Content-Type must be application/json, got ${JSON.stringify(type.slice(0, 80))}`,
    );
  }
  const charset = params.find((p) => p.startsWith("charset="));
  if (charset && !/^charset="?utf-8"?$/.test(charset)) {
    throw new ScopeError("unsupported_media_type", "only the utf-8 charset is accepted");
  }
  const raw = await readRawBody(ctx);
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new ScopeError("bad_request", "body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ScopeError("bad_request", `body is not JSON: ${(e as Error).message.slice(0, 120)}`);
  }
  return schema.parse(value);
}
