/**
 * Admin routes: networks, join tokens, peer removal. Every handler starts
 * with requireAdmin (admin socket or admin bearer token).
 */
import { randomBytes } from "node:crypto";
import Router from "@koa/router";
import { ScopeError } from "../../core/errors.js";
import {
  NetworkInput,
  PeerAdminUpdate,
  TokenInput,
  type Network,
  type NetworkList,
  type TokenCreated,
} from "../../core/protocol.js";
import { sha256Hex } from "../../crypto/keys.js";
import { requireAdmin } from "../auth.js";
import { readJson } from "../body.js";
import type { RegistryDeps } from "../deps.js";
import { checkCidr6, parseCidr4 } from "../ipam.js";
import { networkParam, peerParam } from "./params.js";

/** Join tokens: 32 random bytes; the prefix makes a leaked one easy to spot (secret scanners, logs). */
export const newJoinToken = (): string => `scope_${randomBytes(32).toString("base64url")}`;

export function adminRoutes(deps: RegistryDeps): Router {
  const { store, clock, log } = deps;
  const router = new Router();

  router.get("/networks", async (ctx) => {
    requireAdmin(ctx, deps);
    ctx.body = { networks: await store.listNetworks() } satisfies NetworkList;
  });

  router.post("/networks", async (ctx) => {
    requireAdmin(ctx, deps);
    const input = await readJson(ctx, NetworkInput);
    parseCidr4(input.cidr);
    if (input.cidr6) checkCidr6(input.cidr6);
    const network: Network = { ...input, createdAt: clock.now() };
    await store.createNetwork(network);
    log.info("network created", { network: network.name, cidr: network.cidr, topology: network.topology });
    ctx.status = 201;
    ctx.body = network;
  });

  router.get("/networks/:net", async (ctx) => {
    requireAdmin(ctx, deps);
    const name = networkParam(ctx);
    const network = await store.getNetwork(name);
    if (!network) throw new ScopeError("not_found", `no network ${name}`);
    ctx.body = network;
  });

  router.post("/networks/:net/tokens", async (ctx) => {
    requireAdmin(ctx, deps);
    const network = networkParam(ctx);
    const input = await readJson(ctx, TokenInput);
    if (!(await store.getNetwork(network))) throw new ScopeError("not_found", `no network ${network}`);
    const now = clock.now();
    const token = newJoinToken();
    const created: TokenCreated = {
      id: randomBytes(4).toString("hex"),
      network,
      token,
      uses: input.uses,
      expiresAt: now + input.expiresIn * 1000,
      role: input.role,
    };
    await store.createToken({ ...created, hash: sha256Hex(token), createdAt: now });
    log.info("join token created", {
      network,
      tokenId: created.id,
      uses: created.uses,
      expiresAt: created.expiresAt,
      role: created.role,
    });
    ctx.status = 201;
    ctx.body = created;
  });

  // The admin makes a peer a hub or an edge again; every member learns it from the peerUpdate.
  router.patch("/networks/:net/peers/:peer", async (ctx) => {
    requireAdmin(ctx, deps);
    const network = networkParam(ctx);
    const id = peerParam(ctx);
    const input = await readJson(ctx, PeerAdminUpdate);
    const { peer } = await store.updatePeer(network, id, input, clock.now());
    log.info("peer role set", { network, peer: id, role: peer.role });
    ctx.body = peer;
  });

  router.delete("/networks/:net/peers/:peer", async (ctx) => {
    requireAdmin(ctx, deps);
    const network = networkParam(ctx);
    const id = peerParam(ctx);
    if (!(await store.removePeer(network, id, "removed", clock.now()))) {
      throw new ScopeError("not_found", `no peer ${id} in ${network}`);
    }
    deps.hub.closePeer(network, id);
    log.info("peer removed", { network, peer: id });
    ctx.status = 204;
  });

  return router;
}
