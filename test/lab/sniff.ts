// Captures real UDP datagrams arriving at a port inside a lab host, without
// taking them from the process bound to that port: a packet socket
// (AF_PACKET) sees a copy of every frame. Node has no packet sockets, and
// tcpdump is not part of the lab's packages, so the capture is a few lines of
// Python 3 (present wherever node-gyp works) that print one JSON line per
// datagram. The security test replays what it captures.

import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { Lab } from "./lab.js";
import { waitFor } from "./wait.js";

export interface Captured {
  /** Source as seen by the capturing host: "ip:port". */
  readonly from: string;
  readonly payload: Buffer;
}

// IPv4 only: the security test runs over IPv4, where NAT makes endpoints interesting.
const SCRIPT = `
import json, socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
print(json.dumps({"ready": True}), flush=True)
while True:
    pkt, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 28 or pkt[9] != 17:
        continue
    ihl = (pkt[0] & 15) * 4
    if int.from_bytes(pkt[ihl + 2:ihl + 4], "big") != port:
        continue
    src = socket.inet_ntoa(pkt[12:16]) + ":" + str(int.from_bytes(pkt[ihl:ihl + 2], "big"))
    print(json.dumps({"from": src, "hex": pkt[ihl + 8:].hex()}), flush=True)
`;

export class Sniffer {
  readonly captured: Captured[] = [];
  private stderr = "";

  private constructor(private readonly child: ChildProcess) {}

  /** Starts capturing datagrams to UDP `port` on every interface of `host`. */
  static async start(lab: Lab, host: string, port: number): Promise<Sniffer> {
    const child = lab.spawn(host, ["python3", "-u", "-c", SCRIPT, String(port)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const sniffer = new Sniffer(child);
    let ready = false;
    child.stderr?.on("data", (d: Buffer) => (sniffer.stderr += d.toString()));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = JSON.parse(line) as { ready?: boolean; from?: string; hex?: string };
      if (m.ready === true) ready = true;
      else if (m.from !== undefined && m.hex !== undefined)
        sniffer.captured.push({ from: m.from, payload: Buffer.from(m.hex, "hex") });
    });
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`packet capture failed: ${sniffer.stderr}`);
        return ready;
      },
      { timeoutMs: 10_000, what: `packet capture on ${host}` },
    );
    return sniffer;
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

// Sends each stdin line (hex) as one datagram from one socket, then counts
// answers for a moment: a probe answered from a stranger's address would
// make the target a reflector for spoofed traffic.
const SEND = `
const dgram = require("node:dgram");
const [to, bind, waitMs] = process.argv.slice(1);
const i = to.lastIndexOf(":");
const s = dgram.createSocket(to.startsWith("[") ? "udp6" : "udp4");
let replies = 0;
s.on("message", () => replies++);
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => s.bind(Number(bind), () => {
  for (const hex of input.split("\\n").filter(Boolean))
    s.send(Buffer.from(hex, "hex"), Number(to.slice(i + 1)), to.slice(0, i).replace(/^\\[|\\]$/g, ""));
  setTimeout(() => { console.log(JSON.stringify({ replies })); s.close(); }, Number(waitMs));
}));
`;

/** Sends datagrams from `host` (source port `bindPort`, 0 = any) to "ip:port"; returns how many answers came back. */
export async function sendDatagrams(
  lab: Lab,
  host: string,
  to: string,
  payloads: readonly Buffer[],
  bindPort = 0,
  waitMs = 500,
): Promise<number> {
  const r = await lab.exec(host, [process.execPath, "-e", SEND, to, String(bindPort), String(waitMs)], {
    input: payloads.map((p) => p.toString("hex")).join("\n") + "\n",
  });
  return (JSON.parse(r.stdout) as { replies: number }).replies;
}

// Sends each stdin line (hex) as a datagram the moment it arrives, from one
// socket; prints the number of answers when stdin ends.
const REPLAY = `
const dgram = require("node:dgram");
const [to, bind] = process.argv.slice(1);
const i = to.lastIndexOf(":");
const s = dgram.createSocket("udp4");
let replies = 0, sent = 0, buf = "";
s.on("message", () => replies++);
s.bind(Number(bind), () => {
  process.stdin.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\\n")) >= 0) {
      const hex = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      s.send(Buffer.from(hex, "hex"), Number(to.slice(i + 1)), to.slice(0, i));
      sent++;
    }
  });
  process.stdin.on("end", () => setTimeout(() => { console.log(JSON.stringify({ sent, replies })); s.close(); }, 500));
  console.log("ready");
});
`;

/** A sender in a lab host that replays datagrams as they are handed to it (no process start per batch). */
export class Replayer {
  private out = "";
  private constructor(private readonly child: ChildProcess) {
    child.stdout?.on("data", (d: Buffer) => (this.out += d.toString()));
  }

  static async start(lab: Lab, host: string, to: string, bindPort: number): Promise<Replayer> {
    const child = lab.spawn(host, [process.execPath, "-e", REPLAY, to, String(bindPort)], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    const r = new Replayer(child);
    await waitFor(() => r.out.includes("ready"), { timeoutMs: 10_000, what: `replayer on ${host}` });
    return r;
  }

  send(payload: Buffer): void {
    this.child.stdin?.write(payload.toString("hex") + "\n");
  }

  /** Ends the replay; resolves with how many were sent and how many answers came back. */
  async stop(): Promise<{ sent: number; replies: number }> {
    this.child.stdin?.end();
    const line = await waitFor(() => this.out.split("\n").find((l) => l.startsWith("{")), {
      timeoutMs: 10_000,
      what: "replayer's count",
    });
    return JSON.parse(line) as { sent: number; replies: number };
  }
}
