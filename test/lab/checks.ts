// Observations of a running lab that tests, demo and benchmark share: in-tunnel
// pings, `wg show` of an edge's interface, routes, daemon log health, and
// small statistics. Each returns plain data so callers assert or print it.

import { readFileSync, statSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import type { Lab } from "./lab.js";
import { waitFor } from "./wait.js";

export interface PingResult {
  readonly sent: number;
  readonly received: number;
  /** Average round trip in ms; undefined when nothing came back. */
  readonly avgMs: number | undefined;
}

/** Parses iputils ping's closing lines ("N packets transmitted, M received", "rtt min/avg/max/mdev = a/b/c/d ms"). */
export function parsePing(out: string): PingResult {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out);
  if (counts === null) throw new Error(`no ping summary in: ${out.slice(-300)}`);
  return {
    sent: Number(counts[1]),
    received: Number(counts[2]),
    avgMs: rtt === null ? undefined : Number(rtt[1]),
  };
}

/** A few pings through the tunnel; resolves with the counts (never throws on loss). */
export async function ping(lab: Lab, host: string, addr: string, count = 3): Promise<PingResult> {
  const r = await lab.exec(host, ["ping", "-n", "-q", "-c", String(count), "-i", "0.2", "-W", "2", addr], {
    allowFail: true,
  });
  return parsePing(r.stdout);
}

/**
 * A ping through the tunnel that runs in the background for a fixed number of
 * packets (`ping -i 0.2 -c N`), for "loses no packet while X happens". Ending
 * by count, not by signal, means the last packet's reply is awaited too, so
 * loss means loss.
 */
export class LongPing {
  private out = "";
  private constructor(private readonly child: ChildProcess) {
    child.stdout?.on("data", (d: Buffer) => (this.out += d.toString()));
  }

  static start(lab: Lab, host: string, addr: string, seconds: number, intervalS = 0.2): LongPing {
    const count = Math.ceil(seconds / intervalS);
    // -W 2: a reply later than 2 s counts as lost, as a user would see it.
    const argv = ["ping", "-n", "-i", String(intervalS), "-W", "2", "-c", String(count), addr];
    const child = lab.spawn(host, argv, {
      stdio: ["ignore", "pipe", "ignore"],
    });
    return new LongPing(child);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sequence numbers (1-based) that got no reply, to tell where in a transition they went. */
  lostSeqs(count: number): number[] {
    const got = new Set([...this.out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
    return Array.from({ length: count }, (_, i) => i + 1).filter((n) => !got.has(n));
  }

  /** Waits for the ping to finish its count and returns the counts. */
  async done(timeoutMs = 120_000): Promise<PingResult> {
    await waitFor(() => !this.running, { timeoutMs, intervalMs: 100, what: "ping to finish" });
    return parsePing(this.out);
  }
}

/** `wg show IFACE FIELD` as key → value lines (endpoints, allowed-ips, peers, latest-handshakes). */
export async function wgShow(
  lab: Lab,
  host: string,
  iface: string,
  field: string,
): Promise<Map<string, string>> {
  // Always name the interface: a bare `wg show` lists every UAPI socket of the machine.
  const r = await lab.exec(host, ["wg", "show", iface, field]);
  const map = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    if (line.trim() === "") continue;
    const [key, ...rest] = line.split("\t");
    if (key !== undefined) map.set(key, rest.join("\t"));
  }
  return map;
}

/** The host's IPv4 and IPv6 routes, one normalized line each, for before/after comparisons. */
export async function routes(lab: Lab, host: string): Promise<string[]> {
  const v4 = await lab.exec(host, ["ip", "-4", "route", "show", "table", "all"]);
  const v6 = await lab.exec(host, ["ip", "-6", "route", "show", "table", "all"]);
  return [...v4.stdout.split("\n"), ...v6.stdout.split("\n")]
    .map((l) => l.trim().replace(/\s+/g, " "))
    .filter((l) => l !== "" && !l.includes(" proto kernel ") && !/^(local|multicast|broadcast) /.test(l))
    .sort();
}

/** A position in a log file, to look only at what was written after it. */
export function logMark(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

export interface LogHealth {
  readonly lines: number;
  readonly errors: string[];
}

/** Lines written to a daemon log since `from`, and those at level error (the "ISO level msg" format of src/log.ts). */
export function logSince(file: string, from: number): LogHealth {
  const text = readFileSync(file).subarray(from).toString("utf8");
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  return { lines: lines.length, errors: lines.filter((l) => /^\S+ error\b/.test(l)) };
}

/** Percentile with linear interpolation between closest ranks; p in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (rank - lo);
}

/** Left-aligned text table. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
