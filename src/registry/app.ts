/**
 * The registry as a koa app, without listening (koa's callback() pattern):
 * startRegistry (server.ts) serves it on TCP and on the admin socket; tests
 * call app.callback() directly.
 *
 * Chain: error mapping first, so nothing thrown below escapes as koa's
 * plain-text default; then the routes by role; then 405 for a known path
 * with the wrong method (koa-router would answer 501 to unknown methods,
 * and no bad input may cause a 5xx).
 */
import Koa from "koa";
import Router from "@koa/router";
import { ScopeError } from "../core/errors.js";
import { API_PREFIX } from "../core/protocol.js";
import type { RegistryDeps } from "./deps.js";
import { isAdminSocketRequest } from "./auth.js";
import { errorMiddleware } from "./http-errors.js";
import { addressKey } from "./limits.js";
import { adminRoutes } from "./routes/admin.js";
import { memberRoutes } from "./routes/member.js";
import { metricsRoutes, systemRoutes } from "./routes/system.js";
import { uiRoutes } from "./routes/ui.js";
import { viewerGate, viewRoutes } from "./routes/view.js";
import { ViewFeed } from "./view-feed.js";

export function createRegistryApp(deps: RegistryDeps): Koa {
  const app = new Koa({ proxy: false });
  // Errors are answered and logged by errorMiddleware; koa's own handler would print to stderr.
  app.on("error", (err: Error) => deps.log.debug("connection error", { err: err.message }));

  const api = new Router({ prefix: API_PREFIX });
  // Member routes first: DELETE .../peers/self must not fall into the admin's .../peers/:peer.
  const feed = new ViewFeed().follow(deps.store);
  api.use(viewerGate(deps));
  api.use(memberRoutes(deps, (network) => feed.changed(network)).routes());
  api.use(viewRoutes(deps, feed).routes());
  api.use(adminRoutes(deps).routes());
  const system = systemRoutes(deps);
  const ui = uiRoutes();

  app.use(errorMiddleware(deps.log, (status) => deps.metrics.countRequest(status)));
  app.use(async (ctx, next) => {
    // Every TCP request counts against its source address; the admin socket is not limited.
    if (deps.limits && !isAdminSocketRequest(ctx.req)) {
      await deps.limits.take("requestPerAddress", addressKey(ctx.req.socket.remoteAddress ?? ""));
    }
    await next();
    if (ctx.status === 405 || ctx.status === 501) {
      throw new ScopeError("method_not_allowed", `${ctx.method.slice(0, 16)} is not allowed on this path`);
    }
  });
  for (const r of [system, ui, api]) {
    app.use(r.routes());
    app.use(r.allowedMethods({ throw: false }));
  }
  return app;
}

/** The /metrics listener's app (server.ts serves it on metrics_listen): errors as JSON, nothing else. */
export function createMetricsApp(deps: RegistryDeps): Koa {
  const app = new Koa({ proxy: false });
  app.on("error", (err: Error) => deps.log.debug("metrics connection error", { err: err.message }));
  app.use(errorMiddleware(deps.log, () => {}));
  const r = metricsRoutes(deps);
  app.use(r.routes());
  app.use(r.allowedMethods({ throw: false }));
  return app;
}
