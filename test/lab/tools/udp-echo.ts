// UDP helper run inside lab hosts (node dist/test/lab/tools/udp-echo.js MODE ...).
// It prints JSON only, one object per line, so test/lab/udp.ts can parse it.
//
//   serve --port P [--port P2] [--family 4|6] [--hello HOST:PORT]
//       Echo server: answers each datagram with {"observed":"ip:port"} (the
//       sender's address as seen here, i.e. its NAT mapping) and prints
//       {"event":"recv","local":P,"from":"ip:port","payload":...}. --hello
//       first sends from the first port to HOST:PORT, to open a NAT mapping
//       for that port. Prints {"event":"ready"} once bound. Runs until killed.
//   probe --bind P --to HOST:PORT [--to ...] [--timeout MS]
//       From one socket, asks each reflector what it sees; prints
//       {"results":[{"to","observed"|null}]} and exits.
//   knock --to HOST:PORT [--count N] [--wait MS]
//       Sends from a connected socket, which receives ICMP errors: prints
//       {"refused":bool,"replies":N}. Tells silent drops from rejections.
//   punch --bind P --to HOST:PORT [--timeout MS]
//       Hole punching: sends every 100 ms until a datagram from the peer has
//       arrived and the peer has confirmed ours; prints
//       {"ok":bool,"ms":N,"from":"ip:port"|null}; exit 1 when not ok.

import dgram from "node:dgram";
import { isIPv6 } from "node:net";
import { parseArgs } from "node:util";

type Endpoint = { host: string; port: number };

const RETRY_MS = 100;

function parseEndpoint(s: string): Endpoint {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (m === null || m[1] === undefined || m[2] === undefined) throw new Error(`bad endpoint "${s}"`);
  return { host: m[1], port: Number(m[2]) };
}

function fmt(addr: string, port: number): string {
  return isIPv6(addr) ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function socketFor(family: "4" | "6"): dgram.Socket {
  return family === "6" ? dgram.createSocket({ type: "udp6", ipv6Only: true }) : dgram.createSocket("udp4");
}

function familyOf(host: string): "4" | "6" {
  return isIPv6(host) ? "6" : "4";
}

function bind(sock: dgram.Socket, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(port, () => {
      sock.off("error", reject);
      resolve();
    });
  });
}

function out(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function parsePayload(msg: Buffer): unknown {
  try {
    return JSON.parse(msg.toString("utf8"));
  } catch {
    return msg.toString("utf8");
  }
}

async function serve(ports: number[], family: string, hello: string | undefined): Promise<void> {
  const socks = await Promise.all(
    ports.map(async (port) => {
      const sock = socketFor(family === "6" ? "6" : "4");
      sock.on("message", (msg, rinfo) => {
        const from = fmt(rinfo.address, rinfo.port);
        out({ event: "recv", local: port, from, payload: parsePayload(msg) });
        // Answer probes only: echoing an echo would loop between two servers.
        if (parsePayload(msg) !== "probe") return;
        sock.send(JSON.stringify({ observed: from, local: port }), rinfo.port, rinfo.address);
      });
      await bind(sock, port);
      return sock;
    }),
  );
  if (hello !== undefined && socks[0] !== undefined) {
    const to = parseEndpoint(hello);
    socks[0].send("probe", to.port, to.host);
  }
  out({ event: "ready" });
}

async function probe(bindPort: number, targets: Endpoint[], timeoutMs: number): Promise<void> {
  const first = targets[0];
  if (first === undefined) throw new Error("probe needs --to");
  const sock = socketFor(familyOf(first.host));
  await bind(sock, bindPort);
  const observed = new Map<string, string>();
  const key = (host: string, port: number): string => fmt(host, port);
  sock.on("message", (msg, rinfo) => {
    const reply = parsePayload(msg) as { observed?: string };
    if (typeof reply.observed === "string") observed.set(key(rinfo.address, rinfo.port), reply.observed);
  });
  const deadline = Date.now() + timeoutMs;
  // Resend until every reflector answered: a lost datagram must not look
  // like a different mapping.
  while (Date.now() < deadline && observed.size < targets.length) {
    for (const t of targets) if (!observed.has(key(t.host, t.port))) sock.send("probe", t.port, t.host);
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
  sock.close();
  out({
    results: targets.map((t) => ({
      to: key(t.host, t.port),
      observed: observed.get(key(t.host, t.port)) ?? null,
    })),
  });
}

async function knock(to: Endpoint, count: number, waitMs: number): Promise<void> {
  const sock = socketFor(familyOf(to.host));
  let refused = false;
  let replies = 0;
  sock.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "ECONNREFUSED") refused = true;
  });
  sock.on("message", () => replies++);
  await new Promise<void>((resolve) => sock.connect(to.port, to.host, resolve));
  for (let i = 0; i < count; i++) {
    sock.send("knock");
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
  await new Promise((r) => setTimeout(r, waitMs));
  sock.close();
  out({ refused, replies });
}

async function punch(bindPort: number, to: Endpoint, timeoutMs: number): Promise<number> {
  const sock = socketFor(familyOf(to.host));
  await bind(sock, bindPort);
  const start = Date.now();
  let from: string | null = null;
  let confirmed = false;
  sock.on("message", (msg, rinfo) => {
    from ??= fmt(rinfo.address, rinfo.port);
    // "heard" means the peer's packets reach us; our replies say so, and
    // a peer that says so proves our packets reach it.
    if (msg.toString() === "punch heard") confirmed = true;
  });
  while (Date.now() - start < timeoutMs && !(from !== null && confirmed)) {
    sock.send(from === null ? "punch" : "punch heard", to.port, to.host);
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
  // Let the peer see a few confirmations before the socket closes.
  for (let i = 0; i < 3; i++) {
    sock.send("punch heard", to.port, to.host);
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
  sock.close();
  const ok = from !== null && confirmed;
  out({ ok, ms: Date.now() - start, from });
  return ok ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      port: { type: "string", multiple: true },
      bind: { type: "string" },
      to: { type: "string", multiple: true },
      family: { type: "string", default: "4" },
      hello: { type: "string" },
      timeout: { type: "string", default: "3000" },
      count: { type: "string", default: "3" },
      wait: { type: "string", default: "500" },
    },
  });
  const targets = (values.to ?? []).map(parseEndpoint);
  const timeout = Number(values.timeout);
  switch (mode) {
    case "serve":
      await serve((values.port ?? []).map(Number), values.family, values.hello);
      return new Promise<number>(() => undefined); // until killed
    case "probe":
      await probe(Number(values.bind ?? 0), targets, timeout);
      return 0;
    case "knock":
      if (targets[0] === undefined) throw new Error("knock needs --to");
      await knock(targets[0], Number(values.count), Number(values.wait));
      return 0;
    case "punch":
      if (targets[0] === undefined) throw new Error("punch needs --to");
      return punch(Number(values.bind ?? 0), targets[0], timeout);
    default:
      throw new Error(`unknown mode "${mode ?? ""}" (serve | probe | knock | punch)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`udp-echo: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  },
);
