/**
 * Unauthenticated, read-only. /healthz (for probes and load balancers) is on
 * the API port; /metrics is on its own listener (metrics_listen, loopback by
 * default): it names every network and its size, which is nobody's business
 * on the public port.
 */
import Router from "@koa/router";
import type { RegistryDeps } from "../deps.js";

export function systemRoutes(deps: RegistryDeps): Router {
  const router = new Router();
  router.get("/healthz", async (ctx) => {
    // A cheap store read: healthy means the database answers, not just the event loop.
    await deps.store.lastEventId();
    ctx.body = { ok: true };
  });
  return router;
}

export function metricsRoutes(deps: RegistryDeps): Router {
  const router = new Router();
  router.get("/metrics", async (ctx) => {
    ctx.type = "text/plain; version=0.0.4; charset=utf-8";
    ctx.body = deps.metrics.render({
      peers: await deps.store.countPeers(),
      subscribers: deps.hub.subscribers,
    });
  });
  return router;
}
