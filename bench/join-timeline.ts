// Where a newcomer's join spends its time (bench/join.ts): read from the
// newcomer's own log, in ms since `scope join` was spawned. The daemon logs
// "starting" (node up, join request answered), "member of network" (with
// its netcheck and registry round trips) and one "direct path" per peer.

import { percentile, textTable } from "../test/lab/checks.js";

export interface JoinTimeline {
  /** Daemon's first log line: node start-up, keys and the join request. */
  readonly startedMs: number;
  /** Netcheck, then updateSelf + listPeers: the engine has its peers. */
  readonly memberMs: number;
  readonly netcheckMs: number;
  /** After the netcheck, until the interface existed (the peer list is read meanwhile). */
  readonly interfaceWaitMs: number;
  /** The peer list, asked for after the netcheck. */
  readonly listMs: number;
  /** Our record update, sent once the interface exists. */
  readonly updateSelfMs: number;
  /** The first and the last peer proven direct. */
  readonly firstDirectMs: number;
  readonly lastDirectMs: number;
}

const STAMP = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) \S+\s+(.*)$/;
const field = (line: string, k: string): number =>
  Number(new RegExp(`\\b${k}=(\\d+)`).exec(line)?.[1] ?? NaN);

/** The timeline of one join whose `scope join` was spawned at t0 (epoch ms). */
export function joinTimeline(logText: string, t0: number): JoinTimeline {
  let startedMs = NaN;
  let memberMs = NaN;
  let netcheckMs = NaN;
  let interfaceWaitMs = NaN;
  let listMs = NaN;
  let updateSelfMs = NaN;
  const direct: number[] = [];
  for (const l of logText.split("\n")) {
    const m = STAMP.exec(l);
    if (!m) continue;
    const at = Date.parse(m[1] as string) - t0;
    const body = m[2] as string;
    if (Number.isNaN(startedMs)) startedMs = at;
    if (body.includes("member of network")) {
      memberMs = at;
      netcheckMs = field(body, "netcheckMs");
      interfaceWaitMs = field(body, "interfaceWaitMs");
      listMs = field(body, "listPeersMs");
      updateSelfMs = field(body, "updateSelfMs");
    } else if (/(?<!no )direct path peer=/.test(body)) direct.push(at);
  }
  return {
    startedMs,
    memberMs,
    netcheckMs,
    interfaceWaitMs,
    listMs,
    updateSelfMs,
    firstDirectMs: direct.length ? Math.min(...direct) : NaN,
    lastDirectMs: direct.length ? Math.max(...direct) : NaN,
  };
}

/** Medians over joins, one row per step. */
export function timelineTable(ts: readonly JoinTimeline[]): string {
  const med = (of: (t: JoinTimeline) => number): string => {
    const v = ts.map(of).filter((x) => !Number.isNaN(x));
    return v.length ? `${Math.round(percentile(v, 50))} ms` : "-";
  };
  return textTable(
    ["step (median over joins)", "at", "took"],
    [
      ["daemon up (node start-up, keys, join request)", med((t) => t.startedMs), ""],
      ["netcheck", "", med((t) => t.netcheckMs)],
      ["then waiting for the interface", "", med((t) => t.interfaceWaitMs)],
      ["listPeers (asked for after the netcheck)", "", med((t) => t.listMs)],
      ["updateSelf (sent once the interface exists)", "", med((t) => t.updateSelfMs)],
      ["member: the engine has its peers", med((t) => t.memberMs), ""],
      ["first peer direct", med((t) => t.firstDirectMs), med((t) => t.firstDirectMs - t.memberMs)],
      ["last peer direct", med((t) => t.lastDirectMs), med((t) => t.lastDirectMs - t.memberMs)],
    ],
  );
}
