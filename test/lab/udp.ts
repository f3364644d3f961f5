// Typed wrappers around tools/udp-echo.js, run inside lab hosts. Tests state
// NAT facts with these ("what does the reflector see", "does an unsolicited
// datagram arrive") instead of parsing tool output themselves.

import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { LAB_TOOLS, type Lab } from "./lab.js";
import { waitFor } from "./wait.js";

const TOOL = [process.execPath, LAB_TOOLS.udp];

export interface ServerEvent {
  readonly event: "recv";
  readonly local: number;
  /** Sender as seen by this server: "ip:port". */
  readonly from: string;
  readonly payload: unknown;
}

/** A running `udp-echo serve` inside a host; stopped by stop() or lab teardown. */
export class UdpServer {
  readonly events: ServerEvent[] = [];
  private stderr = "";

  private constructor(private readonly child: ChildProcess) {}

  static async start(
    lab: Lab,
    host: string,
    opts: { ports: readonly number[]; family?: 4 | 6; hello?: string },
  ): Promise<UdpServer> {
    const args = [
      "serve",
      ...opts.ports.flatMap((p) => ["--port", String(p)]),
      "--family",
      String(opts.family ?? 4),
    ];
    if (opts.hello !== undefined) args.push("--hello", opts.hello);
    const child = lab.spawn(host, [...TOOL, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const server = new UdpServer(child);
    let ready = false;
    child.stderr?.on("data", (d: Buffer) => (server.stderr += d.toString()));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const ev = JSON.parse(line) as { event: string };
      if (ev.event === "ready") ready = true;
      else server.events.push(ev as ServerEvent);
    });
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`udp-echo serve exited: ${server.stderr}`);
        return ready;
      },
      // A python start-up in a namespace: well under a second idle, over 5 s once on a host busy with VMs.
      { timeoutMs: 20_000, what: `udp server on ${host}` },
    );
    return server;
  }

  /** Datagrams received from a sender whose address (without port) is `addr`. */
  from(addr: string): ServerEvent[] {
    return this.events.filter((e) => splitEndpoint(e.from).addr === addr);
  }

  /** The mapping a reflector reported in reply to --hello, once it arrived. */
  observed(): Promise<string> {
    return waitFor(
      () =>
        this.events
          .map((e) => (e.payload as { observed?: string } | null)?.observed)
          .find((o) => o !== undefined),
      { timeoutMs: 3000, what: "reflector reply to hello" },
    );
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

/** From one local port, the mapping each reflector observed (null = no answer). */
export async function probe(
  lab: Lab,
  host: string,
  bindPort: number,
  to: readonly string[],
  timeoutMs = 3000,
): Promise<(string | null)[]> {
  const args = [
    "probe",
    "--bind",
    String(bindPort),
    "--timeout",
    String(timeoutMs),
    ...to.flatMap((t) => ["--to", t]),
  ];
  const r = await lab.exec(host, [...TOOL, ...args]);
  return (JSON.parse(r.stdout) as { results: { observed: string | null }[] }).results.map((x) => x.observed);
}

/** Sends a few datagrams from a connected socket: was an ICMP error returned, did anything answer? */
export async function knock(
  lab: Lab,
  host: string,
  to: string,
  waitMs = 500,
): Promise<{ refused: boolean; replies: number }> {
  const r = await lab.exec(host, [...TOOL, "knock", "--to", to, "--wait", String(waitMs)]);
  return JSON.parse(r.stdout) as { refused: boolean; replies: number };
}

export interface PunchResult {
  readonly ok: boolean;
  readonly ms: number;
  readonly from: string | null;
}

/** Both hosts send to each other's public endpoint at once; each side's result. */
export async function punch(
  lab: Lab,
  a: { host: string; port: number; to: string },
  b: { host: string; port: number; to: string },
  timeoutMs = 5000,
): Promise<[PunchResult, PunchResult]> {
  const one = async (s: { host: string; port: number; to: string }): Promise<PunchResult> => {
    const args = ["punch", "--bind", String(s.port), "--to", s.to, "--timeout", String(timeoutMs)];
    const r = await lab.exec(s.host, [...TOOL, ...args], { allowFail: true });
    return JSON.parse(r.stdout) as PunchResult;
  };
  return Promise.all([one(a), one(b)]);
}

/** "ip:port" with brackets for IPv6. */
export function endpoint(addr: string, port: number): string {
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Splits "ip:port" / "[ip]:port". */
export function splitEndpoint(ep: string): { addr: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(ep);
  if (m === null || m[1] === undefined) throw new Error(`bad endpoint "${ep}"`);
  return { addr: m[1], port: Number(m[2]) };
}
