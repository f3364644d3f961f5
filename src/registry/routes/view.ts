/**
 * The web view's API (issue 16): read-only, for the admin or a viewer
 * token of the network. A viewer token is a bearer token kept as a hash
 * (like join tokens, in a table of its own so it can never join); it reads
 * the view of one network and nothing else: any other request carrying it
 * is a 403, whatever the method, before a route sees it (viewerGate).
 *
 * What the view shows is chosen here, field by field (ViewPeer): names,
 * addresses, roles, NAT kinds and paths; no key, no candidate, no token.
 */
import { randomBytes } from "node:crypto";
import Router from "@koa/router";
import type { Context, Middleware } from "koa";
import { ScopeError } from "../../core/errors.js";
import {
  API_PREFIX,
  ViewerTokenInput,
  type PathList,
  type PathRecord,
  type ViewData,
  type ViewerTokenCreated,
} from "../../core/protocol.js";
import { sha256Hex } from "../../crypto/keys.js";
import { isAdmin, requireAdmin } from "../auth.js";
import { readJson } from "../body.js";
import type { RegistryDeps } from "../deps.js";
import { addressKey } from "../limits.js";
import type { ViewerTokenRecord } from "../store.js";
import type { ViewFeed } from "../view-feed.js";
import { networkParam } from "./params.js";

export const newViewerToken = (): string => `scopeview_${randomBytes(32).toString("base64url")}`;

/** The only requests a viewer token may make: GET of a network's view, its stream and its paths. */
const VIEWER_READS = new RegExp(`^${API_PREFIX}/networks/[^/]+/(view|view/events|paths)$`);
const HEARTBEAT_MS = 15_000;

const bearer = (ctx: Context): string | undefined => {
  const auth = ctx.get("authorization");
  return auth.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
};

async function viewerToken(ctx: Context, deps: RegistryDeps): Promise<ViewerTokenRecord | undefined> {
  const token = bearer(ctx);
  if (token === undefined || !token.startsWith("scopeview_") || token.length > 200) return undefined;
  return deps.store.viewerTokenByHash(sha256Hex(token));
}

/** Refuses every request but the view's reads that carries a viewer token: a viewer changes nothing. */
export const viewerGate =
  (deps: RegistryDeps): Middleware =>
  async (ctx, next) => {
    if (bearer(ctx)?.startsWith("scopeview_") && !isAdmin(ctx, deps)) {
      const ok = (ctx.method === "GET" || ctx.method === "HEAD") && VIEWER_READS.test(ctx.path);
      if (!ok && (await viewerToken(ctx, deps)))
        throw new ScopeError("forbidden", "a viewer token only reads the web view");
    }
    await next();
  };

/**
 * The admin, or an unexpired viewer token of this network; 401 for anything
 * else. Returns the key its open streams are counted under (streams_per_peer
 * each): per token and source address, so a team sharing a dashboard token
 * is not refused; none for the admin.
 */
async function requireViewer(ctx: Context, deps: RegistryDeps, network: string): Promise<string | undefined> {
  if (isAdmin(ctx, deps)) return undefined;
  const t = await viewerToken(ctx, deps);
  if (!t || t.network !== network || t.expiresAt <= deps.clock.now())
    throw new ScopeError(
      "unauthorized",
      "the web view needs the admin token or a viewer token of this network",
    );
  return `viewer:${t.id}:${addressKey(ctx.req.socket.remoteAddress ?? "")}`;
}

/** Views between current members only (a report racing a removal may outlive its pair: pg-store.ts). */
async function currentPaths(
  deps: RegistryDeps,
  network: string,
  members: Set<string>,
): Promise<PathRecord[]> {
  return (await deps.store.listPaths(network)).filter((p) => members.has(p.from) && members.has(p.peer));
}

export async function viewData(deps: RegistryDeps, name: string): Promise<ViewData> {
  const network = await deps.store.getNetwork(name);
  if (!network) throw new ScopeError("not_found", `no network ${name}`);
  const peers = (await deps.store.listPeers(name)).map((p) => ({
    id: p.id,
    name: p.name,
    address: p.address,
    role: p.role,
    nat: p.nat.mapping,
  }));
  const paths = await currentPaths(deps, name, new Set(peers.map((p) => p.id)));
  return {
    network: { name: network.name, cidr: network.cidr, topology: network.topology },
    peers,
    paths,
    now: deps.clock.now(),
  };
}

export function viewRoutes(deps: RegistryDeps, feed: ViewFeed): Router {
  const router = new Router();

  router.post("/networks/:net/viewer-tokens", async (ctx) => {
    requireAdmin(ctx, deps);
    const network = networkParam(ctx);
    const input = await readJson(ctx, ViewerTokenInput);
    if (!(await deps.store.getNetwork(network))) throw new ScopeError("not_found", `no network ${network}`);
    const now = deps.clock.now();
    const token = newViewerToken();
    const created: ViewerTokenCreated = {
      id: randomBytes(4).toString("hex"),
      network,
      token,
      expiresAt: now + input.expiresIn * 1000,
      viewer: true,
    };
    await deps.store.createViewerToken({
      id: created.id,
      network,
      hash: sha256Hex(token),
      expiresAt: created.expiresAt,
      createdAt: now,
    });
    deps.log.info("viewer token created", { network, tokenId: created.id, expiresAt: created.expiresAt });
    ctx.status = 201;
    ctx.body = created;
  });

  router.get("/networks/:net/view", async (ctx) => {
    const network = networkParam(ctx);
    await requireViewer(ctx, deps, network);
    ctx.set("cache-control", "no-store");
    ctx.body = await viewData(deps, network);
  });

  router.get("/networks/:net/paths", async (ctx) => {
    const network = networkParam(ctx);
    await requireViewer(ctx, deps, network);
    const view = await viewData(deps, network);
    ctx.body = { paths: view.paths } satisfies PathList;
  });

  // A stream of bare wake-ups (view-feed.ts): `event: changed`, then the page reads /view again.
  router.get("/networks/:net/view/events", async (ctx) => {
    const network = networkParam(ctx);
    const who = await requireViewer(ctx, deps, network);
    if (!(await deps.store.getNetwork(network))) throw new ScopeError("not_found", `no network ${network}`);
    if (who !== undefined) deps.limits?.openStream(who, ctx.res);
    ctx.respond = false;
    const res = ctx.res;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      "x-request-id": String(ctx.state.requestId),
    });
    res.write("event: ready\ndata: {}\n\n");
    const stop = feed.watch(network, () => res.write("event: changed\ndata: {}\n\n"));
    const beat = setInterval(() => res.write(": heartbeat\n\n"), HEARTBEAT_MS);
    res.once("close", () => {
      stop();
      clearInterval(beat);
    });
  });

  return router;
}
