/**
 * What this host tells a peer about the peer: where its probes and (once
 * direct) its WireGuard traffic come from, and that we applied it. The
 * WireGuard endpoint is what a peer behind a port-shifting NAT cannot learn
 * any other way. Sent to the subject only; it republishes what is new
 * through updateSelf.
 */
import { formatEndpoint, parseEndpoint } from "../ip.js";
import { messageType, type PostMessage } from "../protocol.js";
import { latencyOf } from "./paths.js";
import { impliedBy } from "./self.js";
import type { EngineEffect, PeerState, ReportState } from "./types.js";

export const newReportState = (dueAt: number): ReportState => ({
  last: undefined,
  dueAt,
  announceApplied: false,
});

export const post = (fx: EngineEffect[], message: PostMessage): void => {
  fx.push({ type: "postMessage", message });
};

const REPORT = messageType("peerReport") as "cc.ltgc.scope:peerReport";

/** Tells a newcomer we applied it (it re-triggers its handshake toward us), once. */
export function announceApplied(ps: PeerState, fx: EngineEffect[]): void {
  if (!ps.report.announceApplied) return;
  ps.report.announceApplied = false;
  post(fx, { type: REPORT, to: ps.peer.id, body: { about: ps.peer.id, applied: true } });
}

export function report(ps: PeerState, now: number, fx: EngineEffect[], onlyNews: boolean): void {
  const r = ps.report;
  if (now < r.dueAt) return;
  const { path, wg: seen } = ps.paths;
  const wg = path === "direct" && seen.endpoint ? parseEndpoint(seen.endpoint) : undefined;
  const src = ps.probe.source;
  if (!wg && !src) return;
  // With 40 joins at once, reports of what the peer knows already (its probe
  // source, a mapping its candidates imply, the path) were thousands of
  // posts that choked the registry; the peer acts on none of them.
  if (onlyNews && (!wg || impliedBy(ps.peer, wg))) return;
  const key = `${wg ? formatEndpoint(wg) : ""} ${src ? formatEndpoint(src) : ""} ${path}`;
  if (key === r.last) return;
  r.last = key;
  const latency = latencyOf(ps);
  post(fx, {
    type: REPORT,
    to: ps.peer.id,
    body: {
      about: ps.peer.id,
      ...(src ? { probeEndpoint: src } : {}),
      ...(wg ? { wgEndpoint: wg } : {}),
      ...(latency !== null ? { latencyMs: latency } : {}),
      ...(path === "none" ? {} : { path }),
    },
  });
}

/** The report's own deadline (seed: 16 s after the attempt started). */
export const reportDeadline = (ps: PeerState, out: number[]): void => {
  out.push(ps.report.dueAt);
};
