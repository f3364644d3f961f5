/**
 * Wire format of the registry's UDP reflector (DESIGN §3): an edge sends a
 * request, the registry answers with the source address and port it saw,
 * signed by its own Ed25519 key (JoinResponse.registryKey).
 *
 * This module only encodes and parses; sockets, keys and rate limits live in
 * src/registry/reflector-server.ts and the prober. Parsers ignore trailing
 * bytes so a later version can append fields.
 *
 *   request (>= REQUEST_MIN_BYTES, zero padded):
 *     0     4  magic "SCPR"
 *     4     1  version (1)
 *     5     1  type (1 = request)
 *     6    16  nonce (chosen by the client, echoed back)
 *     22    …  padding
 *
 *   reply (REPLY_BYTES):
 *     0     4  magic "SCPR"
 *     4     1  version (1)
 *     5     1  type (2 = reply)
 *     6    16  nonce
 *     22    1  family (4 or 6)
 *     23   16  address (IPv4 in the first 4 bytes, rest zero)
 *     39    2  port, big endian
 *     41   64  Ed25519 signature over bytes 0..40
 *
 * A request is padded to at least the size of a reply, so the reflector never
 * sends more bytes than it received: it cannot be used as an amplifier.
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from "./ip.js";

export const REFLECTOR_MAGIC = Uint8Array.of(0x53, 0x43, 0x50, 0x52); // "SCPR"
export const REFLECTOR_VERSION = 1;
export const NONCE_BYTES = 16;
const TYPE_REQUEST = 1;
const TYPE_REPLY = 2;
const HEADER_BYTES = 4 + 1 + 1 + NONCE_BYTES;
const SIGNED_REPLY_BYTES = HEADER_BYTES + 1 + 16 + 2;
export const SIGNATURE_BYTES = 64;
export const REPLY_BYTES = SIGNED_REPLY_BYTES + SIGNATURE_BYTES;
/** Requests shorter than this are dropped: see "amplifier" above. */
export const REQUEST_MIN_BYTES = 128;

export interface ReflectorRequest {
  nonce: Uint8Array;
}

export interface ObservedAddress {
  family: 4 | 6;
  /** Dotted quad or RFC 5952 text, as node:dgram reports it. */
  address: string;
  port: number;
}

export interface ReflectorReply extends ObservedAddress {
  nonce: Uint8Array;
  /** The bytes the signature covers, to hand to an Ed25519 verifier. */
  signed: Uint8Array;
  signature: Uint8Array;
}

function header(type: number, nonce: Uint8Array, size: number): Uint8Array {
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  const b = new Uint8Array(size);
  b.set(REFLECTOR_MAGIC, 0);
  b[4] = REFLECTOR_VERSION;
  b[5] = type;
  b.set(nonce, 6);
  return b;
}

function readHeader(b: Uint8Array, type: number, min: number): Uint8Array | undefined {
  if (b.length < min) return undefined;
  for (let i = 0; i < 4; i++) if (b[i] !== REFLECTOR_MAGIC[i]) return undefined;
  if (b[4] !== REFLECTOR_VERSION || b[5] !== type) return undefined;
  return b.slice(6, HEADER_BYTES);
}

export function encodeRequest(req: ReflectorRequest): Uint8Array {
  return header(TYPE_REQUEST, req.nonce, REQUEST_MIN_BYTES);
}

/** undefined for anything that is not a well-formed request of this version. */
export function parseRequest(b: Uint8Array): ReflectorRequest | undefined {
  const nonce = readHeader(b, TYPE_REQUEST, REQUEST_MIN_BYTES);
  return nonce && { nonce };
}

/** Builds a reply; sign gets the bytes to cover and returns a 64-byte Ed25519 signature. */
export function encodeReply(
  nonce: Uint8Array,
  observed: ObservedAddress,
  sign: (signed: Uint8Array) => Uint8Array,
): Uint8Array {
  const b = header(TYPE_REPLY, nonce, REPLY_BYTES);
  b[HEADER_BYTES] = observed.family;
  b.set(addressBytes(observed), HEADER_BYTES + 1);
  new DataView(b.buffer).setUint16(HEADER_BYTES + 17, observed.port);
  const signature = sign(b.subarray(0, SIGNED_REPLY_BYTES));
  if (signature.length !== SIGNATURE_BYTES) throw new RangeError("signature must be 64 bytes");
  b.set(signature, SIGNED_REPLY_BYTES);
  return b;
}

/** Parses without verifying: the caller checks `signature` over `signed` with the registry key. */
export function parseReply(b: Uint8Array): ReflectorReply | undefined {
  const nonce = readHeader(b, TYPE_REPLY, REPLY_BYTES);
  if (!nonce) return undefined;
  const family = b[HEADER_BYTES];
  if (family !== 4 && family !== 6) return undefined;
  const raw = b.subarray(HEADER_BYTES + 1, HEADER_BYTES + 17);
  const port = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(HEADER_BYTES + 17);
  return {
    nonce,
    family,
    address: family === 4 ? formatIpv4(raw) : formatIpv6(raw),
    port,
    signed: b.slice(0, SIGNED_REPLY_BYTES),
    signature: b.slice(SIGNED_REPLY_BYTES, REPLY_BYTES),
  };
}

function addressBytes(o: ObservedAddress): Uint8Array {
  if (o.family === 6) return parseIpv6(o.address);
  const out = new Uint8Array(16);
  out.set(parseIpv4(o.address), 0);
  return out;
}
