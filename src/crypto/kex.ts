/**
 * The hybrid post-quantum key exchange behind PSK rotation (DESIGN §6,
 * docs/security.md): ML-KEM-768 (FIPS 203, @noble/post-quantum) and X448
 * (RFC 7748, OpenSSL through node:crypto), both shared secrets combined by
 * HKDF-SHA-256 (@noble/hashes) under a transcript of everything either side
 * sent. Nothing here is hand-made crypto: only encodings and the combiner.
 *
 * Every key here is ephemeral, one per pair and epoch: the decapsulating
 * side makes an ML-KEM and an X448 key pair per offer and forgets them once
 * it has the answer, so a host stolen later holds nothing that opens an
 * older epoch's PSK (forward secrecy, which long-lived published KEX keys
 * would not give).
 *
 * Randomness comes in as bytes from the caller (`random`), so the engine
 * stays deterministic under test and a known-answer test can pin the output.
 * Costs on this kind of machine (issue 11): ML-KEM-768 keygen ~0.6 ms,
 * encaps 0.68 ms, decaps 0.71 ms; X448 on OpenSSL 0.15-0.17 ms per keygen or
 * DH (noble's pure-JS X448 is ~20x slower, so it is not used).
 */
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";

export const X448_BYTES = 56;
export const MLKEM_SEED_BYTES = 64;
export const MLKEM_MSG_BYTES = 32;
export const MLKEM_PUBLIC_BYTES = 1184;
export const MLKEM_CIPHERTEXT_BYTES = 1088;
export const NONCE_BYTES = 16;
export const PSK_BYTES = 32;

/** Random bytes; the daemon passes node:crypto randomBytes, tests a seeded source. */
export type RandomBytes = (n: number) => Uint8Array;

const X448_PKCS8 = Buffer.from("3046020100300506032b656f043a0438", "hex");
const INFO = new TextEncoder().encode("cc.ltgc.scope psk v1");

export interface X448Pair {
  /** The private key, parsed once: OpenSSL's PKCS#8 decoder alone costs ~0.5 ms. */
  key: KeyObject;
  public: Uint8Array;
}

/** The raw-key import formats Node 20 has are PKCS#8 (slow decoder) and JWK (needs an "x" it then derives itself). */
const DUMMY_X = Buffer.alloc(X448_BYTES).toString("base64url");

function x448Private(secret: Uint8Array): KeyObject {
  try {
    // ~0.18 ms. Node derives the public half from d and does not check x; should a
    // later Node check it, the import throws and PKCS#8 below does the same job.
    return createPrivateKey({
      key: { kty: "OKP", crv: "X448", d: Buffer.from(secret).toString("base64url"), x: DUMMY_X },
      format: "jwk",
    });
  } catch {
    return createPrivateKey({ key: Buffer.concat([X448_PKCS8, secret]), format: "der", type: "pkcs8" });
  }
}

/** An X448 key pair from 56 random bytes (RFC 7748: any 56 bytes are a private key). */
export function x448Pair(secret: Uint8Array): X448Pair {
  if (secret.length !== X448_BYTES) throw new Error("X448 secret must be 56 bytes");
  const key = x448Private(secret);
  // The JWK export reads the raw public key (~0.004 ms); an SPKI export runs OpenSSL's DER encoder (~0.11 ms).
  const x = key.export({ format: "jwk" }).x;
  if (typeof x !== "string") throw new Error("X448 key without a public half");
  return { key, public: Uint8Array.from(Buffer.from(x, "base64url")) };
}

/** X448 shared secret; throws on a malformed or low-order public key (OpenSSL refuses an all-zero result). */
export function x448Shared(own: KeyObject, peerPublic: Uint8Array): Uint8Array {
  if (peerPublic.length !== X448_BYTES) throw new Error("X448 public key must be 56 bytes");
  // JWK: a raw import (~0.015 ms); the SPKI decoder costs ~0.1 ms, about half the DH itself.
  const publicKey = createPublicKey({
    key: { kty: "OKP", crv: "X448", x: Buffer.from(peerPublic).toString("base64url") },
    format: "jwk",
  });
  return Uint8Array.from(diffieHellman({ privateKey: own, publicKey }));
}

/** What the decapsulating side keeps between its offer and the answer. Secret. */
export interface OfferSecrets {
  mlkemSecret: Uint8Array;
  x448Key: KeyObject;
  /** The public halves, as sent (they go into the transcript). */
  mlkemPublic: Uint8Array;
  x448Public: Uint8Array;
}

export function makeOffer(random: RandomBytes): OfferSecrets {
  const kem = ml_kem768.keygen(random(MLKEM_SEED_BYTES));
  const x = x448Pair(random(X448_BYTES));
  return {
    mlkemSecret: kem.secretKey,
    x448Key: x.key,
    mlkemPublic: kem.publicKey,
    x448Public: x.public,
  };
}

/** Both WireGuard public keys (raw 32 bytes each) in role order: decapsulator first. */
export interface PairKeys {
  decapsulatorWg: Uint8Array;
  encapsulatorWg: Uint8Array;
}

/** The public values of one exchange: what the transcript binds. */
export interface Exchange {
  epoch: number;
  offerX448: Uint8Array;
  offerMlkem: Uint8Array;
  answerX448: Uint8Array;
  ciphertext: Uint8Array;
}

/** PSK and a key-confirmation tag, both from one HKDF; the tag proves the sender derived the same PSK. */
export interface Derived {
  psk: Uint8Array;
  confirm: Uint8Array;
}

const u64 = (n: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
};

/** Length-prefixed concatenation: no two different field lists hash alike. */
function framed(parts: Uint8Array[]): Uint8Array {
  const out: Uint8Array[] = [];
  for (const p of parts) out.push(u64(p.length), p);
  const all = new Uint8Array(out.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of out) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/** SHA-256 over every public value of the exchange and both WireGuard keys. */
export function transcriptHash(keys: PairKeys, x: Exchange): Uint8Array {
  return sha256(
    framed([
      INFO,
      u64(x.epoch),
      keys.decapsulatorWg,
      keys.encapsulatorWg,
      x.offerX448,
      x.offerMlkem,
      x.answerX448,
      x.ciphertext,
    ]),
  );
}

/**
 * The combiner: HKDF-SHA-256 with both shared secrets as input key material
 * (ML-KEM first) and the transcript hash as salt. Either secret alone keeps
 * the PSK secret: a quantum adversary who breaks X448 still faces ML-KEM,
 * and a flaw in ML-KEM still leaves X448.
 */
export function derive(
  mlkemShared: Uint8Array,
  x448Shared: Uint8Array,
  keys: PairKeys,
  x: Exchange,
): Derived {
  const out = hkdf(sha256, framed([mlkemShared, x448Shared]), transcriptHash(keys, x), INFO, 2 * PSK_BYTES);
  return { psk: out.slice(0, PSK_BYTES), confirm: out.slice(PSK_BYTES) };
}

export interface Answer {
  x448Public: Uint8Array;
  ciphertext: Uint8Array;
  derived: Derived;
}

/**
 * The encapsulating side, given a verified offer. Throws on malformed keys.
 * own: E's X448 key pair when the caller shares one among the answers of a
 * round (engine/kex.ts); made here from random otherwise.
 */
export function answerOffer(
  random: RandomBytes,
  keys: PairKeys,
  epoch: number,
  offerX448: Uint8Array,
  offerMlkem: Uint8Array,
  own?: X448Pair,
): Answer {
  if (offerMlkem.length !== MLKEM_PUBLIC_BYTES) throw new Error("ML-KEM public key has the wrong size");
  const { cipherText, sharedSecret } = ml_kem768.encapsulate(offerMlkem, random(MLKEM_MSG_BYTES));
  const x = own ?? x448Pair(random(X448_BYTES));
  const dh = x448Shared(x.key, offerX448);
  const exchange = { epoch, offerX448, offerMlkem, answerX448: x.public, ciphertext: cipherText };
  return { x448Public: x.public, ciphertext: cipherText, derived: derive(sharedSecret, dh, keys, exchange) };
}

/** The decapsulating side, given a verified answer to its own offer. Throws on malformed input. */
export function finishOffer(
  secrets: OfferSecrets,
  keys: PairKeys,
  epoch: number,
  answerX448: Uint8Array,
  ciphertext: Uint8Array,
): Derived {
  if (ciphertext.length !== MLKEM_CIPHERTEXT_BYTES) throw new Error("ML-KEM ciphertext has the wrong size");
  const ss = ml_kem768.decapsulate(ciphertext, secrets.mlkemSecret);
  const dh = x448Shared(secrets.x448Key, answerX448);
  return derive(ss, dh, keys, {
    epoch,
    offerX448: secrets.x448Public,
    offerMlkem: secrets.mlkemPublic,
    answerX448,
    ciphertext,
  });
}

/** Constant-time-enough comparison for tags (lengths are public). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return d === 0;
}
