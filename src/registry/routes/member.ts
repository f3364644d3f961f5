/**
 * Member routes: join, the peer list, self-service (update, leave), relayed
 * messages and the event stream. Each request is signed (auth.ts); the body
 * is validated before any storage call.
 */
import Router from "@koa/router";
import type { Context } from "koa";
import { ScopeError } from "../../core/errors.js";
import {
  JoinRequest,
  PathReport,
  PeerUpdate,
  PostMessage,
  type JoinResponse,
  type Peer,
  type MessageAccepted,
} from "../../core/protocol.js";
import { peerIdOf, sha256Hex } from "../../crypto/keys.js";
import { isAdmin, requireJoinProof, requireJoinToken, requireMember } from "../auth.js";
import { readJson } from "../body.js";
import { addressKey } from "../limits.js";
import type { RegistryDeps } from "../deps.js";
import { streamEvents } from "../stream.js";
import { networkParam } from "./params.js";

/** feed: told of each path report, for the web view's live stream. */
export function memberRoutes(deps: RegistryDeps, onPaths: (network: string) => void = () => {}): Router {
  const { store, clock, log, hub } = deps;
  const router = new Router();

  router.post("/networks/:net/join", async (ctx) => {
    const network = networkParam(ctx);
    await deps.limits?.take("joinPerAddress", addressKey(ctx.req.socket.remoteAddress ?? ""));
    const req = await readJson(ctx, JoinRequest);
    const peerId = peerIdOf(req.peer.identityKey);
    const tokenHash = sha256Hex(req.token);
    // Token before proof: the proof's nonce is the first write, and only a token holder may cause it.
    await requireJoinToken(deps, network, tokenHash, peerId);
    await requireJoinProof(ctx, deps, req.peer.identityKey);
    // What a member claims about its own role is dropped here: the token (or the admin) decides.
    const { role: _claimed, ...peer } = req.peer;
    const out = await store.join({
      network,
      tokenHash,
      peerId,
      peer,
      now: clock.now(),
    });
    log.info(out.event?.event.type.endsWith("peerJoin") ? "peer joined" : "peer re-joined", {
      network,
      peer: peerId,
      name: out.self.name,
      address: out.self.address,
      role: out.self.role,
    });
    // JoinResponse with the peer list spliced in as stored text (see JoinOutcome.peersJson).
    const rest = {
      self: out.self,
      network: out.network,
      lastEventId: out.lastEventId,
      registryKey: deps.registryIdentity.publicKey,
      reflectorPorts: deps.reflectorPorts,
    } satisfies Omit<JoinResponse, "peers">;
    jsonText(ctx, `{"peers":${out.peersJson},${JSON.stringify(rest).slice(1)}`);
  });

  // Shared with admins: `scope peer list` goes through the admin socket.
  router.get("/networks/:net/peers", async (ctx) => {
    const network = networkParam(ctx);
    if (!isAdmin(ctx, deps)) await requireMember(ctx, deps, network);
    jsonText(ctx, `{"peers":${await store.listPeersJson(network)}}`); // a PeerList
  });

  router.put("/networks/:net/peers/self", async (ctx) => {
    const network = networkParam(ctx);
    const update = await readJson(ctx, PeerUpdate);
    const me = await requireMember(ctx, deps, network);
    ctx.body = (await store.updatePeer(network, me.id, update, clock.now())).peer;
  });

  router.delete("/networks/:net/peers/self", async (ctx) => {
    const network = networkParam(ctx);
    const me = await requireMember(ctx, deps, network);
    await store.removePeer(network, me.id, "left", clock.now());
    hub.closePeer(network, me.id);
    log.info("peer left", { network, peer: me.id });
    ctx.status = 204;
  });

  // The member's view of its peers, for the web view (issue 16): kept as the latest per pair.
  router.put("/networks/:net/paths", async (ctx) => {
    const network = networkParam(ctx);
    const report = await readJson(ctx, PathReport);
    const me = await requireMember(ctx, deps, network, ["reportPerPeer"]);
    const views = report.views.filter((v) => v.peer !== me.id);
    await store.reportPaths(network, me.id, views, clock.now());
    onPaths(network);
    ctx.status = 204;
  });

  router.post("/networks/:net/messages", async (ctx) => {
    const network = networkParam(ctx);
    const msg = await readJson(ctx, PostMessage);
    const me = await requireMember(ctx, deps, network, ["messagePerPeer"]);
    await checkMessage(deps, network, me, msg);
    const stored = await store.appendEvent({ ...msg, network, from: me.id, ts: clock.now() });
    ctx.status = 202;
    ctx.body = { id: stored.event.id } satisfies MessageAccepted;
  });

  router.get("/networks/:net/events", async (ctx) => {
    const network = networkParam(ctx);
    const after = resumePoint(ctx);
    const me = await requireMember(ctx, deps, network);
    deps.limits?.openStream(me.id, ctx.res);
    await streamEvents(ctx, deps, network, me.id, after);
  });

  return router;
}

/**
 * Rules the schema cannot express: recipients exist, a peer speaks only for
 * itself, and a report goes only to the peer it is about (it tells that peer
 * how it is seen; told to anyone else it would be a member's word about a
 * third peer's endpoint). Hubs see everyone's WireGuard traffic, so theirs
 * may go to anyone; the role is the stored one, which the admin controls.
 */
async function checkMessage(deps: RegistryDeps, network: string, me: Peer, msg: PostMessage) {
  const from = me.id;
  if (msg.type === "cc.ltgc.scope:kex" && msg.to === undefined) {
    throw new ScopeError("bad_request", "to: kex messages are directed; name the recipient");
  }
  if (msg.type === "cc.ltgc.scope:peerConn" && msg.body.peerId !== from) {
    throw new ScopeError("forbidden", "body.peerId: a peer announces only its own connection");
  }
  if (msg.type === "cc.ltgc.scope:peerReport" && me.role !== "hub" && msg.to !== msg.body.about) {
    throw new ScopeError("forbidden", "to: a report goes only to the peer it is about (body.about)");
  }
  if (msg.to === from) throw new ScopeError("bad_request", "to: a message to oneself is not relayed");
  if (msg.to !== undefined && !(await deps.store.getPeer(network, msg.to))) {
    throw new ScopeError("not_found", `to: no peer ${msg.to} in ${network}`);
  }
}

/** A body assembled from stored JSON text rather than serialized from objects. */
function jsonText(ctx: Context, text: string): void {
  ctx.type = "application/json";
  ctx.body = text;
}

/** Last-Event-ID header, or ?after= for clients that cannot set headers; undefined = live only. */
function resumePoint(ctx: Context): number | undefined {
  const header = ctx.get("last-event-id");
  const query = ctx.query.after;
  const raw = header !== "" ? header : query;
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || !/^[0-9]{1,15}$/.test(raw)) {
    throw new ScopeError("bad_request", "Last-Event-ID / after: expected a non-negative integer");
  }
  return Number(raw);
}
