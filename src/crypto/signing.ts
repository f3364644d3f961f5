/**
 * Signed member requests (DESIGN §3). The signature covers method, path with
 * query, timestamp, nonce and a hash of the body, so a captured request can
 * neither be replayed (timestamp window + nonce seen once) nor altered.
 */
import { randomBytes } from "node:crypto";
import { sha256Hex, signMessage, verifyMessage, type Identity } from "./keys.js";

/** The headers a signed member request carries (docs/protocol.md lists them). */
export const SIGNATURE_HEADERS = {
  peer: "x-scope-peer",
  time: "x-scope-time",
  nonce: "x-scope-nonce",
  signature: "x-scope-signature",
} as const;

export interface RequestParts {
  method: string;
  /** Path and query exactly as sent, e.g. "/v1/networks/corp/peers?x=1". */
  path: string;
  body: string | Uint8Array;
}

export interface SignatureFields {
  peer: string;
  time: number;
  nonce: string;
  signature: string;
}

export function canonicalRequest(req: RequestParts, time: number, nonce: string): string {
  return [
    "scope-request-v1",
    req.method.toUpperCase(),
    req.path,
    String(time),
    nonce,
    sha256Hex(req.body),
  ].join("\n");
}

/** Headers to add to a request. peer is the peer id, or "join" while joining (key comes from the body). */
export function signRequest(
  identity: Identity,
  peer: string,
  req: RequestParts,
  now: number,
): Record<string, string> {
  const nonce = randomBytes(16).toString("hex");
  return {
    [SIGNATURE_HEADERS.peer]: peer,
    [SIGNATURE_HEADERS.time]: String(now),
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: signMessage(identity, canonicalRequest(req, now, nonce)),
  };
}

/** Reads the signature headers; undefined if any is missing or malformed. */
export function readSignatureHeaders(get: (name: string) => string | undefined): SignatureFields | undefined {
  const peer = get(SIGNATURE_HEADERS.peer);
  const time = Number(get(SIGNATURE_HEADERS.time));
  const nonce = get(SIGNATURE_HEADERS.nonce);
  const signature = get(SIGNATURE_HEADERS.signature);
  if (!peer || !nonce || !signature || !Number.isSafeInteger(time)) return undefined;
  if (!/^[0-9a-f]{32}$/.test(nonce) || peer.length > 64) return undefined;
  return { peer, time, nonce, signature };
}

export function verifyRequest(identityKey: string, req: RequestParts, fields: SignatureFields): boolean {
  return verifyMessage(identityKey, canonicalRequest(req, fields.time, fields.nonce), fields.signature);
}
