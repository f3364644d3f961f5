/**
 * Path parameters, checked before anything touches storage: a name that is
 * not a valid network name is a 400, never a lookup.
 */
import type { Context } from "koa";
import { ScopeError } from "../../core/errors.js";
import { NetworkName, PeerId } from "../../core/protocol.js";

function param(ctx: Context, name: string, schema: typeof NetworkName | typeof PeerId, what: string): string {
  const value = (ctx as Context & { params?: Record<string, string> }).params?.[name];
  const r = schema.safeParse(value);
  if (!r.success) throw new ScopeError("bad_request", `${what} in the path is malformed`);
  return r.data;
}

export const networkParam = (ctx: Context): string => param(ctx, "net", NetworkName, "network name");
export const peerParam = (ctx: Context): string => param(ctx, "peer", PeerId, "peer id");
