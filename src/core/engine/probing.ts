/**
 * Probe bookkeeping shared by the reducer's handlers and reconcile: nonces,
 * outstanding pings, and the log-effect helper.
 */
import { formatEndpoint } from "../ip.js";
import { encodeProbe, pruneSeen, type ProbeMessage } from "../probe/codec.js";
import type { Endpoint } from "../protocol.js";
import type { EngineEffect, EngineState, LogLevel } from "./types.js";

const PING_TTL_MS = 10_000;

export function nextNonce(st: EngineState): string {
  st.nonceCounter = (st.nonceCounter + 1) >>> 0;
  return st.cfg.nonceSalt + st.nonceCounter.toString(16).padStart(8, "0");
}

export function pong(st: EngineState, now: number, echoNonce: string, observed: Endpoint): ProbeMessage {
  return {
    type: "pong" as const,
    sender: st.self?.id ?? "",
    nonce: nextNonce(st),
    time: now,
    echoNonce,
    observed,
  };
}

/** Pings every target; records them so pongs can be matched and timed. */
export function sendPings(
  st: EngineState,
  peerId: string,
  key: Uint8Array,
  targets: Endpoint[],
  now: number,
  fx: EngineEffect[],
): void {
  for (const to of targets) {
    const nonce = nextNonce(st);
    st.pingsOut.set(nonce, { peerId, to: formatEndpoint(to), sentAt: now });
    fx.push({
      type: "sendProbe",
      to,
      bytes: encodeProbe({ type: "ping", sender: st.self?.id ?? "", nonce, time: now }, key),
    });
  }
}

export function pruneProbeState(st: EngineState, now: number): void {
  for (const [n, p] of st.pingsOut) if (now - p.sentAt > PING_TTL_MS) st.pingsOut.delete(n);
  pruneSeen(st.seenNonces, now);
}

export const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): EngineEffect => ({
  type: "log",
  level,
  msg,
  ...(fields ? { fields } : {}),
});
