/**
 * Probe MAC keys. Each pair of peers shares one 32-byte key derived from
 * their Ed25519 identity keys: X25519 between the Montgomery forms
 * (RFC 7748 birational map), then HKDF-SHA-256 with a label and both public
 * keys in sorted order, so both directions derive the same key and the key
 * is bound to this pair and this purpose.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { signMessage, type Identity } from "../../crypto/keys.js";
import type { EngineIdentity } from "../engine/types.js";

const LABEL = new TextEncoder().encode("cc.ltgc.scope probe mac v1");
export const MAC_BYTES = 16;

/** DER prefixes that wrap a raw 32-byte X25519 key as PKCS#8 / SPKI (RFC 8410). */
const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI = Buffer.from("302a300506032b656e032100", "hex");

/**
 * X25519 on OpenSSL: the same bytes as noble's x25519.getSharedSecret, but
 * ~0.1 ms instead of 3-90 ms in pure JS on a loaded host. A joining edge
 * derives one key per peer before it can configure anyone, so this was a
 * visible share of the join time (8 peers: 0.2-1.2 s).
 */
function x25519Shared(secret: Uint8Array, publicU: Uint8Array): Uint8Array {
  const privateKey = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, secret]),
    format: "der",
    type: "pkcs8",
  });
  const publicKey = createPublicKey({
    key: Buffer.concat([X25519_SPKI, publicU]),
    format: "der",
    type: "spki",
  });
  return new Uint8Array(diffieHellman({ privateKey, publicKey }));
}

const b64 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "base64"));

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0);
  return a.length - b.length;
}

/** What the engine holds of an identity: the public key, pair keys and signatures made from a seed kept in this closure. */
export function identityKeyer(id: Identity): EngineIdentity {
  const kept: Identity = { publicKey: id.publicKey, secretKey: Uint8Array.from(id.secretKey) };
  return {
    publicKey: kept.publicKey,
    pairKey: (theirs) => probePairKey(kept.secretKey, kept.publicKey, theirs),
    sign: (message) => signMessage(kept, message),
  };
}

/**
 * The pair key of (my identity, their identity public key). Throws on a
 * malformed public key; callers treat that peer as unverifiable.
 */
export function probePairKey(mySecret: Uint8Array, myPublic: string, theirPublic: string): Uint8Array {
  const mine = b64(myPublic);
  const theirs = b64(theirPublic);
  const shared = x25519Shared(ed25519.utils.toMontgomerySecret(mySecret), ed25519.utils.toMontgomery(theirs));
  const [lo, hi] = compareBytes(mine, theirs) <= 0 ? [mine, theirs] : [theirs, mine];
  const salt = new Uint8Array(64);
  salt.set(lo, 0);
  salt.set(hi, 32);
  return hkdf(sha256, shared, salt, LABEL, 32);
}

/**
 * HMAC-SHA-256 truncated to 128 bits. On OpenSSL: every probe sent and
 * received computes one, and the pure-JS HMAC was the largest single share
 * of an idle daemon's probe handling.
 */
export const probeMac = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  new Uint8Array(createHmac("sha256", key).update(data).digest().subarray(0, MAC_BYTES));

/** Constant-time comparison, so a forger learns nothing from timing. */
export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return d === 0;
}
