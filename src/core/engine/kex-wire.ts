/**
 * The kex message on the wire (the body of `cc.ltgc.scope:kex`, protocol.ts
 * KexBody): what each stage's payload holds and what the signature covers.
 *
 *   request  nonce(16)                        E asks D for a rotation (E restarted, `scope psk rotate`)
 *   offer    nonce(16) x448(56) mlkem-ek(1184) D's ephemeral public keys for this epoch
 *   answer   nonce(16) x448(56) mlkem-ct(1088) E's ephemeral X448 key and the encapsulation; nonce = the offer's
 *   confirm  nonce(16) tag(32)                 D derived the same PSK (HKDF key-confirmation output)
 *
 * The Ed25519 signature of the sender's identity key covers a label, the
 * network, sender and recipient ids, the epoch, the stage and a hash of the
 * payload. So the registry that relays it can neither alter it, nor pass it
 * off as coming from someone else or going to someone else; replays are
 * refused by the slice (epochs only go up, answers and confirms must match
 * the one outstanding nonce).
 */
import {
  NONCE_BYTES,
  X448_BYTES,
  MLKEM_CIPHERTEXT_BYTES,
  MLKEM_PUBLIC_BYTES,
  PSK_BYTES,
} from "../../crypto/kex.js";
import { sha256Hex, verifyMessage } from "../../crypto/keys.js";
import type { EngineIdentity } from "./types.js";

export type KexStage = "request" | "offer" | "answer" | "confirm";

export interface KexBodyWire {
  epoch: number;
  stage: KexStage;
  payload: string;
  signature: string;
}

export interface KexRoute {
  network: string;
  from: string;
  to: string;
}

const PAYLOAD_BYTES: Record<KexStage, number> = {
  request: NONCE_BYTES,
  offer: NONCE_BYTES + X448_BYTES + MLKEM_PUBLIC_BYTES,
  answer: NONCE_BYTES + X448_BYTES + MLKEM_CIPHERTEXT_BYTES,
  confirm: NONCE_BYTES + PSK_BYTES,
};

function signedText(route: KexRoute, epoch: number, stage: KexStage, payload: string): string {
  return [
    "scope-kex-v1",
    route.network,
    route.from,
    route.to,
    String(epoch),
    stage,
    sha256Hex(Buffer.from(payload, "base64")),
  ].join("\n");
}

export function sealKex(
  identity: Pick<EngineIdentity, "sign">,
  route: KexRoute,
  epoch: number,
  stage: KexStage,
  parts: Uint8Array[],
): KexBodyWire {
  const payload = Buffer.concat(parts).toString("base64");
  return {
    epoch,
    stage,
    payload,
    signature: identity.sign(signedText(route, epoch, stage, payload)),
  };
}

/** One stage's payload split in its fields. */
export interface OpenedKex {
  nonce: Uint8Array;
  /** offer/answer: the X448 public key; confirm: the tag. */
  first: Uint8Array;
  /** offer: the ML-KEM public key; answer: the ciphertext. */
  second: Uint8Array;
}

/** Verifies and splits; undefined for a bad signature or a payload of the wrong size (every failure alike). */
export function openKex(
  senderIdentityKey: string,
  route: KexRoute,
  body: KexBodyWire,
): OpenedKex | undefined {
  if (
    !verifyMessage(senderIdentityKey, signedText(route, body.epoch, body.stage, body.payload), body.signature)
  )
    return undefined;
  const raw = Uint8Array.from(Buffer.from(body.payload, "base64"));
  if (raw.length !== PAYLOAD_BYTES[body.stage]) return undefined;
  const nonce = raw.slice(0, NONCE_BYTES);
  const rest = raw.slice(NONCE_BYTES);
  switch (body.stage) {
    case "request":
      return { nonce, first: new Uint8Array(0), second: new Uint8Array(0) };
    case "confirm":
      return { nonce, first: rest, second: new Uint8Array(0) };
    case "offer":
    case "answer":
      return { nonce, first: rest.slice(0, X448_BYTES), second: rest.slice(X448_BYTES) };
  }
}
