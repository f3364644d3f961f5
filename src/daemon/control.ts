/**
 * The daemon's control socket (/run/scope/NET.sock, root only, 0600): one
 * JSON object per line each way. Requests:
 *
 *   {"cmd":"status"}                      → {"ok":true,"status":Status}
 *   {"cmd":"netcheck"}                    → {"ok":true,"netcheck":NetcheckReport}
 *   {"cmd":"ping","peer":P,"count":N}     → {"ok":true,"ping":{peer,address,output,exitCode}}
 *   {"cmd":"leave"}                       → {"ok":true}   (then the daemon leaves and exits)
 *   {"cmd":"pskRotate","peer"?:P}         → {"ok":true}   (rotation with P, or every peer, starts now)
 *   {"cmd":"recreate"}                    → {"ok":true,"recreate":{backend}}  (scope recreate)
 *
 * Errors: {"ok":false,"error":CODE,"message":TEXT}. The socket is a local
 * admin interface: its permissions are the access control.
 */
import { chmod, mkdir, mkdtemp, rename, rm, unlink } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { basename, dirname, join } from "node:path";
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
  z.strictObject({ cmd: z.literal("pskRotate"), peer: z.string().min(1).max(100).optional() }),
  z.strictObject({ cmd: z.literal("recreate") }),
]);
export type ControlRequest = z.input<typeof ControlRequest>;

export type ControlHandler = (req: z.output<typeof ControlRequest>) => Promise<Record<string, unknown>>;

const MAX_LINE = 64 * 1024;
/** Requests one connection may make; the CLI makes one. More is a client gone wrong (or a fuzzer). */
const MAX_REQUESTS_PER_CONN = 16;
const MAX_CONNECTIONS = 32;
/** A connection that says nothing for this long is closed. */
const IDLE_MS = 60_000;

/**
 * Listens on path with mode 0600 from its first moment, without touching the
 * process umask (which is process-wide: changing it in async code races every
 * other file created meanwhile). The socket is made in a fresh 0700
 * directory beside path, where nobody else can reach it, chmod'ed, then
 * renamed into place: connect(2) on path finds it only with its final mode.
 */
export async function serveControl(path: string, handle: ControlHandler): Promise<Server> {
  return (await listenControl(path, handle)).publish();
}

/** A control socket listening in its nest, where nobody can reach it yet (listenControl). */
export interface PendingControl {
  /** Renames the socket into place: from now on connect(2) on path finds it. */
  publish(): Promise<Server>;
  /** Closes it unpublished, nest and all. */
  close(): Promise<void>;
}

/**
 * serveControl's first half: the socket listens, with its final mode, in
 * the fresh 0700 directory; publish() is the rename. A daemon that may not
 * answer yet (its interface is still being made) does the slow half early.
 */
export async function listenControl(path: string, handle: ControlHandler): Promise<PendingControl> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const nest = await mkdtemp(join(dir, `.${basename(path)}.`));
  const server = createServer((conn) => serveConnection(conn, handle));
  server.maxConnections = MAX_CONNECTIONS;
  const inNest = join(nest, "s");
  const close = async (): Promise<void> => {
    server.close();
    await rm(nest, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(inNest, () => resolve());
    });
    await chmod(inNest, 0o600);
  } catch (e) {
    await close();
    throw e;
  }
  return {
    async publish() {
      try {
        await unlink(path).catch(() => undefined); // a stale socket from a killed daemon
        await rename(inNest, path);
      } catch (e) {
        server.close();
        throw e;
      } finally {
        await rm(nest, { recursive: true, force: true });
      }
      return server;
    },
    close,
  };
}

function serveConnection(conn: Socket, handle: ControlHandler): void {
  let buf = "";
  let requests = 0;
  let closing = false;
  // One answer at a time, in order: a pipelining client waits, it is not refused.
  let chain: Promise<void> = Promise.resolve();
  const refuse = (why: string): void => {
    closing = true;
    buf = "";
    void chain.then(() => reply(conn, failure("bad_request", why), true));
  };
  conn.setEncoding("utf8");
  conn.setTimeout(IDLE_MS, () => conn.destroy());
  conn.on("error", () => undefined);
  conn.on("data", (chunk: string) => {
    if (closing) return;
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (++requests > MAX_REQUESTS_PER_CONN) return refuse("too many requests on one connection");
      chain = chain.then(async () => reply(conn, await answer(line, handle)));
    }
    if (buf.length > MAX_LINE) refuse("request too long");
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

/** What a daemon may answer: checked before any caller reads it (a stale or foreign socket says anything). */
const ControlReply = z.union([
  z.looseObject({ ok: z.literal(true) }),
  z.strictObject({ ok: z.literal(false), error: z.string().max(100), message: z.string().max(10_000) }),
]);
/** A status of thousands of peers is a few MB; anything past this is not a daemon talking. */
const MAX_REPLY = 64 * 1024 * 1024;

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
    const fail = (message: string): void => {
      clock.clearTimer(timer);
      conn.destroy();
      reject(new ScopeError("unavailable", `${path}: ${message}`));
    };
    conn.on("data", (c: string) => {
      buf += c;
      if (buf.length > MAX_REPLY) return fail("answer too long");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clock.clearTimer(timer);
      conn.end();
      let json: unknown;
      try {
        json = JSON.parse(buf.slice(0, nl));
      } catch {
        return fail("answer is not JSON");
      }
      const r = ControlReply.safeParse(json);
      if (!r.success) return fail("answer is not a daemon's");
      if (r.data.ok) resolve(r.data);
      else
        reject(
          new ScopeError(
            Object.hasOwn(ERROR_CODES, r.data.error) ? (r.data.error as ErrorCode) : "internal",
            r.data.message,
          ),
        );
    });
    conn.on("end", () => {
      if (buf.indexOf("\n") < 0) fail("the daemon closed the connection without an answer");
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
