/**
 * Probe wire format: encode, parse, verify. No sockets, no timers (like
 * tailscale's disco package). The engine decides what to send; the daemon
 * moves the bytes.
 *
 *   0      4   5    6        8          16       24           32          32+len      +16
 *   +------+---+----+--------+----------+--------+------------+-----------+-----------+
 *   |"SCPB"|ver|type| bodyLen| sender id| nonce  | time (ms)  | body      | MAC       | ignored...
 *   +------+---+----+--------+----------+--------+------------+-----------+-----------+
 *
 * sender id is the 8-byte peer id (16 hex digits). The MAC (HMAC-SHA-256/128,
 * pair key from mac.ts) covers everything before it. A pong's body is
 * echoNonce(8) family(1: 4|6) address(16) port(2): the ping it answers and
 * the source address:port the pinged peer saw, then time(8, float64 ms):
 * the header's time to the fraction of a millisecond, so a pong yields the
 * peer's clock offset to well under a millisecond (engine/probing.ts
 * noteClock). An upgrade's body is delayMs(2) at(8, float64 ms): "I move our
 * traffic from the hub to the direct path in delayMs, at `at` on my clock;
 * move with me" (engine/paths.ts upgradeAt). Parsers ignore body bytes
 * beyond the fields they know and anything after the MAC, so later versions
 * can add fields; a body without the float64 (version 1 without it) still
 * parses.
 */
import { familyOf, formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from "../ip.js";
import type { Endpoint } from "../protocol.js";
import { MAC_BYTES, macEqual, probeMac } from "./mac.js";

// Not the reflector's "SCPR": both arrive on the probe socket and must never be mistaken for each other.
export const PROBE_MAGIC = Uint8Array.from([0x53, 0x43, 0x50, 0x42]); // "SCPB"
export const PROBE_VERSION = 1;
const HEADER = 32;
const PONG_BODY = 27;
const PONG_BODY_EXACT = PONG_BODY + 8;

export type ProbeMessage =
  | { type: "ping"; sender: string; nonce: string; time: number }
  | { type: "pong"; sender: string; nonce: string; time: number; echoNonce: string; observed: Endpoint }
  | { type: "upgrade"; sender: string; nonce: string; time: number; delayMs: number; at?: number };

const TYPE_CODE = { ping: 1, pong: 2, upgrade: 3 } as const;
const UPGRADE_BODY = 2;
const UPGRADE_BODY_EXACT = UPGRADE_BODY + 8;

const HEX8 = /^[0-9a-f]{16}$/;
const hexBytes = (hex: string, n: 8): Uint8Array => {
  if (!HEX8.test(hex)) throw new Error(`expected ${n} bytes of hex`);
  return Uint8Array.from(Buffer.from(hex, "hex"));
};
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export function encodeProbe(msg: ProbeMessage, key: Uint8Array): Uint8Array {
  const body =
    msg.type === "pong"
      ? encodePongBody(msg.echoNonce, msg.observed, msg.time)
      : msg.type === "upgrade"
        ? encodeUpgradeBody(msg.delayMs, msg.at)
        : new Uint8Array(0);
  const out = new Uint8Array(HEADER + body.length + MAC_BYTES);
  const view = new DataView(out.buffer);
  out.set(PROBE_MAGIC, 0);
  out[4] = PROBE_VERSION;
  out[5] = TYPE_CODE[msg.type];
  view.setUint16(6, body.length);
  out.set(hexBytes(msg.sender, 8), 8);
  out.set(hexBytes(msg.nonce, 8), 16);
  // Whole ms on the wire: the clock may be fractional (sub-ms round trips).
  view.setBigUint64(24, BigInt(Math.floor(msg.time)));
  out.set(body, HEADER);
  out.set(probeMac(key, out.subarray(0, HEADER + body.length)), HEADER + body.length);
  return out;
}

function encodeUpgradeBody(delayMs: number, at: number | undefined): Uint8Array {
  const body = new Uint8Array(at === undefined ? UPGRADE_BODY : UPGRADE_BODY_EXACT);
  const view = new DataView(body.buffer);
  view.setUint16(0, delayMs);
  if (at !== undefined) view.setFloat64(UPGRADE_BODY, at);
  return body;
}

function encodePongBody(echoNonce: string, observed: Endpoint, time: number): Uint8Array {
  const body = new Uint8Array(PONG_BODY_EXACT);
  body.set(hexBytes(echoNonce, 8), 0);
  const v6 = familyOf(observed.address) === "ipv6";
  const addr = v6 ? parseIpv6(observed.address) : parseIpv4(observed.address);
  body[8] = v6 ? 6 : 4;
  body.set(addr, 9);
  const view = new DataView(body.buffer);
  view.setUint16(25, observed.port);
  view.setFloat64(PONG_BODY, time);
  return body;
}

/** The claimed sender of a datagram, to look up its pair key; undefined if it is not a probe. */
export function probeSender(bytes: Uint8Array): string | undefined {
  if (bytes.length < HEADER + MAC_BYTES) return undefined;
  if (!PROBE_MAGIC.every((b, i) => bytes[i] === b) || bytes[4] !== PROBE_VERSION) return undefined;
  return toHex(bytes.subarray(8, 16));
}

/** Parses and verifies; undefined for anything malformed or with a wrong MAC. */
export function decodeProbe(bytes: Uint8Array, key: Uint8Array): ProbeMessage | undefined {
  const sender = probeSender(bytes);
  if (sender === undefined) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bodyLen = view.getUint16(6);
  const macAt = HEADER + bodyLen;
  if (bytes.length < macAt + MAC_BYTES) return undefined;
  if (!macEqual(probeMac(key, bytes.subarray(0, macAt)), bytes.subarray(macAt, macAt + MAC_BYTES)))
    return undefined;
  const time = Number(view.getBigUint64(24));
  const nonce = toHex(bytes.subarray(16, 24));
  switch (bytes[5]) {
    case TYPE_CODE.ping:
      return { type: "ping", sender, nonce, time };
    case TYPE_CODE.pong: {
      if (bodyLen < PONG_BODY) return undefined;
      const b = bytes.subarray(HEADER, HEADER + PONG_BODY);
      const fam = b[8];
      if (fam !== 4 && fam !== 6) return undefined;
      const address = fam === 4 ? formatIpv4(b.subarray(9, 13)) : formatIpv6(b.subarray(9, 25));
      const port = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(25);
      if (port === 0) return undefined;
      return {
        type: "pong",
        sender,
        nonce,
        time: exactTime(view, bodyLen >= PONG_BODY_EXACT ? HEADER + PONG_BODY : undefined, time),
        echoNonce: toHex(b.subarray(0, 8)),
        observed: { address, port },
      };
    }
    case TYPE_CODE.upgrade: {
      if (bodyLen < UPGRADE_BODY) return undefined;
      const delayMs = view.getUint16(HEADER);
      if (bodyLen < UPGRADE_BODY_EXACT) return { type: "upgrade", sender, nonce, time, delayMs };
      const at = view.getFloat64(HEADER + UPGRADE_BODY);
      return Number.isFinite(at) ? { type: "upgrade", sender, nonce, time, delayMs, at } : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The float64 time at offset, when it is there and agrees with the header's
 * whole milliseconds (anything else is malformed: the header's time wins).
 */
function exactTime(view: DataView, offset: number | undefined, whole: number): number {
  if (offset === undefined) return whole;
  const t = view.getFloat64(offset);
  return Number.isFinite(t) && Math.floor(t) === whole ? t : whole;
}

/**
 * Replay and staleness guard. seen maps "sender/nonce" to when it may be
 * forgotten; a probe is fresh when its time is within windowMs of now and its
 * nonce was not seen. Nonces are remembered for twice the window, longer
 * than any accepted timestamp can be.
 */
export function acceptFresh(
  seen: Map<string, number>,
  msg: ProbeMessage,
  now: number,
  windowMs: number,
): boolean {
  if (Math.abs(now - msg.time) > windowMs) return false;
  const k = `${msg.sender}/${msg.nonce}`;
  if (seen.has(k)) return false;
  seen.set(k, now + 2 * windowMs);
  return true;
}

export function pruneSeen(seen: Map<string, number>, now: number): void {
  for (const [k, until] of seen) if (until <= now) seen.delete(k);
}
