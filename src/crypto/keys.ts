/**
 * Key material, on OpenSSL through node:crypto (Ed25519 verify 0.08 ms vs
 * 1.2 ms in pure JS, which matters for a registry verifying every request).
 *
 * Identity keys are Ed25519: they sign registry requests and kex messages.
 * WireGuard keys are X25519, in WireGuard's base64. Secret halves are kept as
 * bytes and written to 0600 files; they never go into logs (use shortKey).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";

const b64url = (b: Uint8Array): string => Buffer.from(b).toString("base64url");
const fromB64 = (s: string): Buffer => Buffer.from(s, "base64");

export interface Identity {
  /** Raw 32-byte Ed25519 public key, base64. */
  readonly publicKey: string;
  /** Raw 32-byte Ed25519 seed. Secret. */
  readonly secretKey: Uint8Array;
}

/*
 * New keys come from randomBytes, not generateKeyPairSync: on Node 20.20.2
 * a garbage collection during the JWK export of a freshly generated pair
 * can hang the main thread for good (seen twice by bench:apply, gdb in
 * KeyGenJob::~KeyGenJob under ExportJWK). An Ed25519 seed and an X25519
 * private key are 32 random bytes by definition (RFC 8032, RFC 7748), so
 * nothing is lost.
 */
export function generateIdentity(): Identity {
  return identityFromSecret(randomBytes(32));
}

export function identityFromSecret(secretKey: Uint8Array): Identity {
  if (secretKey.length !== 32) throw new Error("identity key must be 32 bytes");
  const jwk = createPrivateKey({ key: pkcs8Ed25519(secretKey), format: "der", type: "pkcs8" }).export({
    format: "jwk",
  });
  return {
    publicKey: Buffer.from(jwk.x as string, "base64url").toString("base64"),
    secretKey: Uint8Array.from(secretKey),
  };
}

/** PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): fixed 16-byte prefix. */
function pkcs8Ed25519(seed: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
}

const privateKeyCache = new WeakMap<Uint8Array, KeyObject>();
const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_MAX = 50_000;

function privateKeyObject(secretKey: Uint8Array): KeyObject {
  let k = privateKeyCache.get(secretKey);
  if (!k) {
    k = createPrivateKey({ key: pkcs8Ed25519(secretKey), format: "der", type: "pkcs8" });
    privateKeyCache.set(secretKey, k);
  }
  return k;
}

function publicKeyObject(publicKey: string): KeyObject | undefined {
  let k = publicKeyCache.get(publicKey);
  if (k) return k;
  const raw = fromB64(publicKey);
  if (raw.length !== 32) return undefined;
  try {
    k = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64url(raw) }, format: "jwk" });
  } catch {
    return undefined;
  }
  if (publicKeyCache.size >= PUBLIC_KEY_CACHE_MAX) publicKeyCache.clear();
  publicKeyCache.set(publicKey, k);
  return k;
}

/** Ed25519 signature, base64 (88 chars). */
export function signMessage(identity: Identity, message: string | Uint8Array): string {
  return sign(null, Buffer.from(message), privateKeyObject(identity.secretKey)).toString("base64");
}

/** False for any malformed key or signature: callers treat every failure alike. */
export function verifyMessage(publicKey: string, message: string | Uint8Array, signature: string): boolean {
  const key = publicKeyObject(publicKey);
  const sig = fromB64(signature);
  if (!key || sig.length !== 64) return false;
  try {
    return verify(null, Buffer.from(message), key, sig);
  } catch {
    return false;
  }
}

/** Stable peer id: 16 hex digits of SHA-256 over the raw identity key. */
export function peerIdOf(identityKey: string): string {
  return createHash("sha256").update(fromB64(identityKey)).digest("hex").slice(0, 16);
}

export interface WgKeyPair {
  /** base64, as `wg genkey` prints it. Secret. */
  privateKey: string;
  publicKey: string;
}

export function generateWgKeyPair(): WgKeyPair {
  // Clamped as `wg genkey` does (X25519 clamps anyway; the stored key then reads like wg's).
  const k = randomBytes(32);
  k[0] = (k[0] ?? 0) & 248;
  k[31] = ((k[31] ?? 0) & 127) | 64;
  return wgKeyPairFromPrivate(k.toString("base64"));
}

export function wgKeyPairFromPrivate(privateKey: string): WgKeyPair {
  const raw = fromB64(privateKey);
  if (raw.length !== 32) throw new Error("WireGuard private key must be 32 bytes of base64");
  const key = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), raw]),
    format: "der",
    type: "pkcs8",
  });
  const x = key.export({ format: "jwk" }).x as string;
  return { privateKey, publicKey: Buffer.from(x, "base64url").toString("base64") };
}

/** For logs and tables: the first 8 characters of a public key and an ellipsis. Never pass a secret. */
export const shortKey = (publicKey: string): string => `${publicKey.slice(0, 8)}…`;

export const sha256Hex = (data: string | Uint8Array): string =>
  createHash("sha256").update(data).digest("hex");
