/**
 * The daemon's control socket (/run/scope/NET.sock, root only, 0600): one
 * JSON object per line each way. Requests:
 *
 *   {"cmd":"status"}                      → {"ok":true,"status":Status}
 *   {"cmd":"netcheck"}                    → {"ok":true,"netcheck":NetcheckReport}
 *   {"cmd":"ping","peer":P,"count":N}     → {"ok":true,"ping":{peer,address,output,exitCode}}
 *   {"cmd":"leave"}                       → {"ok":true}   (then the daemon leaves and exits)
 *   {"cmd":"recreate"}                    → {"ok":true,"recreate":{backend}}  (scope recreate)
 *
 * Errors: {"ok":false,"error":CODE,"message":TEXT}. The socket is a local
 * admin interface: its permissions are the access control.
 */
import { chmod, mkdir, unlink } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { z } from "zod";
import { systemClock, type Clock } from "../core/clock.js";
import { ERROR_CODES, ScopeError, isScopeError, type ErrorCode } from "../core/errors.js";

export const ControlRequest = z.discriminatedUnion("cmd", [
  z.strictObject({ cmd: z.literal("status") }),
  z.strictObject({ cmd: z.literal("netcheck") }),
  z.strictObject({
    cmd: z.literal("ping"),
    peer: z.string().min(1).max(100),
    count: z.number().int().min(1).max(100).default(3),
  }),
  z.strictObject({ cmd: z.literal("leave") }),
  z.strictObject({ cmd: z.literal("recreate") }),
]);
export type ControlRequest = z.input<typeof ControlRequest>;

export type ControlHandler = (req: z.output<typeof ControlRequest>) => Promise<Record<string, unknown>>;

const MAX_LINE = 64 * 1024;

export async function serveControl(path: string, handle: ControlHandler): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await unlink(path).catch(() => undefined); // a stale socket from a killed daemon
  const server = createServer((conn) => serveConnection(conn, handle));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // umask-independent: nobody else may even connect before the chmod below.
    const old = process.umask(0o177);
    server.listen(path, () => {
      process.umask(old);
      resolve();
    });
  });
  await chmod(path, 0o600);
  return server;
}

function serveConnection(conn: Socket, handle: ControlHandler): void {
  let buf = "";
  conn.setEncoding("utf8");
  conn.on("error", () => undefined);
  conn.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) return reply(conn, failure("bad_request", "request too long"), true);
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      void answer(line, handle).then((r) => reply(conn, r));
    }
  });
}

async function answer(line: string, handle: ControlHandler): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return failure("bad_request", "not JSON");
  }
  const req = ControlRequest.safeParse(json);
  if (!req.success) return failure("bad_request", req.error.issues[0]?.message ?? "bad request");
  try {
    return { ok: true, ...(await handle(req.data)) };
  } catch (e) {
    return isScopeError(e) ? failure(e.code, e.message) : failure("internal", (e as Error).message);
  }
}

const failure = (error: ErrorCode, message: string) => ({ ok: false, error, message });

function reply(conn: Socket, r: Record<string, unknown>, end = false): void {
  if (conn.writable) conn.write(JSON.stringify(r) + "\n");
  if (end) conn.end();
}

/** Client side, for the CLI: one request, one answer. */
export function controlRequest(
  path: string,
  req: ControlRequest,
  timeoutMs = 30_000,
  clock: Clock = systemClock,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(path);
    let buf = "";
    const timer = clock.setTimer(timeoutMs, () => {
      conn.destroy();
      reject(new ScopeError("unavailable", `no answer from the daemon on ${path}`));
    });
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(JSON.stringify(req) + "\n"));
    conn.on("data", (c: string) => {
      buf += c;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clock.clearTimer(timer);
      conn.end();
      const r = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      if (r.ok === true) resolve(r);
      else
        reject(
          new ScopeError(
            String(r.error) in ERROR_CODES ? (r.error as ErrorCode) : "internal",
            String(r.message),
          ),
        );
    });
    conn.on("error", (e: NodeJS.ErrnoException) => {
      clock.clearTimer(timer);
      const why =
        e.code === "ENOENT" || e.code === "ECONNREFUSED"
          ? "is the daemon running?"
          : e.code === "EACCES"
            ? "run as root"
            : e.message;
      reject(new ScopeError("unavailable", `cannot reach the daemon at ${path}: ${why}`));
    });
  });
}
