/**
 * Who is asking (DESIGN §3): admin = the request came in on the root-only
 * admin socket, or carries the admin bearer token; member = the request is
 * signed by the identity key of a peer of the network (src/crypto/signing.ts),
 * with a fresh timestamp and a nonce never seen before. Nonces are stored, so
 * a replay is refused even after a registry restart.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Context } from "koa";
import { ScopeError } from "../core/errors.js";
import { PeerId, SIGNATURE_WINDOW_MS, type Peer } from "../core/protocol.js";
import { peerIdOf } from "../crypto/keys.js";
import { readSignatureHeaders, verifyRequest, type SignatureFields } from "../crypto/signing.js";
import { readRawBody } from "./body.js";
import type { RegistryDeps } from "./deps.js";
import type { LimitName } from "./limits.js";

/** Requests accepted on the admin Unix socket; the socket's file mode is the authentication. */
const adminSocketRequests = new WeakSet<IncomingMessage>();
export const markAdminRequest = (req: IncomingMessage): void => void adminSocketRequests.add(req);
export const isAdminSocketRequest = (req: IncomingMessage): boolean => adminSocketRequests.has(req);

export const hashAdminToken = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest();

export function isAdmin(ctx: Context, deps: RegistryDeps): boolean {
  if (adminSocketRequests.has(ctx.req)) return true;
  const auth = ctx.get("authorization");
  if (!deps.adminTokenHash || !auth.startsWith("Bearer ")) return false;
  // Hashing first makes the comparison constant-time and length-independent.
  return timingSafeEqual(hashAdminToken(auth.slice(7).trim()), deps.adminTokenHash);
}

export function requireAdmin(ctx: Context, deps: RegistryDeps): void {
  if (!isAdmin(ctx, deps)) {
    throw new ScopeError("unauthorized", "admin only: use the admin socket or an admin token");
  }
}

function signatureFields(ctx: Context, deps: RegistryDeps): SignatureFields {
  const fields = readSignatureHeaders((name) => ctx.get(name) || undefined);
  if (!fields) refuse(deps, "missing or malformed x-scope-* signature headers");
  return fields;
}

function refuse(deps: RegistryDeps, message: string): never {
  deps.metrics.rejectedSignatures++;
  throw new ScopeError("unauthorized", message);
}

/**
 * Checks window, signature, quotas and nonce, in that order (cheap to
 * expensive, storage last). The owner's quotas are charged only once the
 * signature proved the request is theirs, and before the nonce is written,
 * so a member past its quota adds no rows either.
 */
async function checkSigned(
  ctx: Context,
  deps: RegistryDeps,
  identityKey: string,
  owner: string,
  f: SignatureFields,
  quotas: readonly LimitName[],
) {
  const now = deps.clock.now();
  if (Math.abs(now - f.time) > SIGNATURE_WINDOW_MS)
    refuse(deps, "request timestamp outside the accepted window");
  const body = await readRawBody(ctx);
  if (!verifyRequest(identityKey, { method: ctx.method, path: ctx.originalUrl, body }, f)) {
    refuse(deps, "bad request signature");
  }
  for (const q of quotas) await deps.limits?.take(q, owner);
  // Kept until the timestamp leaves the window; after that the window check refuses it anyway.
  if (!(await deps.store.useNonce(`${owner}:${f.nonce}`, f.time + SIGNATURE_WINDOW_MS))) {
    deps.metrics.rejectedSignatures++;
    throw new ScopeError("replay", "nonce already used: replayed request");
  }
}

/** The signed-in member of `network`; 401 for anything else. quotas: besides requestPerPeer. */
export async function requireMember(
  ctx: Context,
  deps: RegistryDeps,
  network: string,
  quotas: readonly LimitName[] = [],
): Promise<Peer> {
  const f = signatureFields(ctx, deps);
  if (!PeerId.safeParse(f.peer).success) refuse(deps, "x-scope-peer is not a peer id");
  const peer = await deps.store.getPeer(network, f.peer);
  if (!peer) refuse(deps, `not a member of ${network}`);
  await checkSigned(ctx, deps, peer.identityKey, peer.id, f, ["requestPerPeer", ...quotas]);
  return peer;
}

/**
 * What /join can check by reading only, before anything is written (DESIGN
 * §3: no request without auth changes state, not even a nonce row): the
 * network exists and the token is known, for this network, unexpired, and
 * has a use left unless the peer is a member re-joining. The store checks
 * all of it again inside its transaction; this is the gate, that the truth.
 */
export async function requireJoinToken(
  deps: RegistryDeps,
  network: string,
  tokenHash: string,
  peerId: string,
): Promise<void> {
  if (!(await deps.store.getNetwork(network))) throw new ScopeError("not_found", `no network ${network}`);
  const token = await deps.store.tokenByHash(tokenHash);
  if (!token) throw new ScopeError("forbidden", "unknown join token");
  if (token.network !== network) throw new ScopeError("token_invalid", "join token is for another network");
  if (token.expiresAt <= deps.clock.now()) throw new ScopeError("token_invalid", "join token expired");
  if (token.uses <= 0 && !(await deps.store.getPeer(network, peerId))) {
    throw new ScopeError("token_invalid", "join token used up");
  }
}

/** Proof of possession at join: signed with the identity key the body claims (peer header "join"). */
export async function requireJoinProof(ctx: Context, deps: RegistryDeps, identityKey: string): Promise<void> {
  const f = signatureFields(ctx, deps);
  if (f.peer !== "join") refuse(deps, "join requests carry x-scope-peer: join");
  await checkSigned(ctx, deps, identityKey, peerIdOf(identityKey), f, ["joinPerPeer"]);
}
