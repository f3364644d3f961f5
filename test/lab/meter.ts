// What a running daemon costs, measured rather than estimated: CPU time and
// resident memory from /proc, and bytes on the wire per UDP port from
// nftables counters in the host's own namespace (hosts carry no rule set of
// their own, so a meter table there changes nothing else).

import { readFileSync } from "node:fs";
import type { Lab } from "./lab.js";
import { IF } from "./world.js";
import { nft, runSync } from "./netns.js";

/** Kernel clock ticks per second for /proc/PID/stat times (USER_HZ; 100 on every Linux ABI node runs on). */
const USER_HZ = Number(runSync(["getconf", "CLK_TCK"]).stdout.trim()) || 100;

/** CPU seconds a process has used (utime + stime), and those of its reaped children (cutime + cstime). */
export function cpuSeconds(pid: number): { self: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after "(comm)", which may itself contain spaces; utime is field 14.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const at = (n: number): number => Number(f[n - 3]);
  return { self: (at(14) + at(15)) / USER_HZ, children: (at(16) + at(17)) / USER_HZ };
}

/** Resident and peak resident memory in MB (/proc/PID/status VmRSS, VmHWM). */
export function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

/** Pids of processes running inside a lab node whose command line contains `needle`. */
export function pidsIn(lab: Lab, name: string, needle: string): number[] {
  const r = runSync(["ip", "netns", "pids", lab.ns(name)]);
  const pids = r.stdout
    .split("\n")
    .map(Number)
    .filter((p) => p > 0);
  return pids.filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ").includes(needle);
    } catch {
      return false; // exited meanwhile
    }
  });
}

export type Direction = "in" | "out";
/** Bytes and packets per direction, counted at the IP layer (headers included) on the host's uplink. */
export type Counts = Readonly<Record<Direction, { readonly bytes: number; readonly packets: number }>>;

/**
 * nftables counters on a host's uplink for chosen UDP ports, each port
 * counted apart (e.g. the probe port and the WireGuard port, so keepalives
 * and handshakes never hide inside the probe figure).
 */
export class PortMeter {
  private constructor(
    private readonly lab: Lab,
    private readonly host: string,
    private readonly ports: Readonly<Record<string, number>>,
  ) {}

  /** Installs the counters in `host`'s namespace (table inet labcount); they go away with the lab. */
  static async install(lab: Lab, host: string, ports: Readonly<Record<string, number>>): Promise<PortMeter> {
    const names = Object.keys(ports);
    const counters = names.flatMap((n) => [`  counter ${n}_in {}`, `  counter ${n}_out {}`]);
    const rules = (dir: Direction): string[] =>
      Object.entries(ports).map(([n, port]) =>
        dir === "in"
          ? `    iifname "${IF.host}" udp dport ${port} counter name "${n}_in"`
          : `    oifname "${IF.host}" udp sport ${port} counter name "${n}_out"`,
      );
    await nft(
      lab.ns(host),
      [
        "table inet labcount {",
        ...counters,
        "  chain in {",
        "    type filter hook input priority raw; policy accept;",
        ...rules("in"),
        "  }",
        "  chain out {",
        "    type filter hook output priority raw; policy accept;",
        ...rules("out"),
        "  }",
        "}",
        "",
      ].join("\n"),
    );
    return new PortMeter(lab, host, ports);
  }

  /** Current totals per port name. */
  async read(): Promise<Record<string, Counts>> {
    const r = await this.lab.exec(this.host, ["nft", "-j", "list", "counters", "table", "inet", "labcount"]);
    const items = (JSON.parse(r.stdout) as { nftables: { counter?: NftCounter }[] }).nftables;
    const byName = new Map(
      items.flatMap((i) => (i.counter === undefined ? [] : [[i.counter.name, i.counter] as const])),
    );
    const get = (n: string): { bytes: number; packets: number } => {
      const c = byName.get(n);
      return { bytes: c?.bytes ?? 0, packets: c?.packets ?? 0 };
    };
    return Object.fromEntries(
      Object.keys(this.ports).map((n) => [n, { in: get(`${n}_in`), out: get(`${n}_out`) }]),
    );
  }
}

interface NftCounter {
  readonly name: string;
  readonly bytes: number;
  readonly packets: number;
}

/** Machine load (/proc/loadavg 1, 5, 15 min), to print next to every timing figure. */
export function loadAvg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/** Busy and total jiffies of all CPUs (/proc/stat), to tell a slow step from a saturated machine. */
export function cpuTimes(): { busy: number; total: number } {
  const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** Share of all CPUs busy (any process) since `from`, 0-1. */
export function cpuBusySince(from: { busy: number; total: number }): number {
  const now = cpuTimes();
  return (now.busy - from.busy) / Math.max(1, now.total - from.total);
}
