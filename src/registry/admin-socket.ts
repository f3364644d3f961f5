/**
 * The admin socket's file mode is its authentication (auth.ts): whoever can
 * connect is an admin. So it is born with its final mode, 0660 (owner and
 * the admin group), by the umask in force while it is bound: listen() on a
 * path binds synchronously, so the umask is restored before anything else
 * runs, and there is no moment where a chmod has not happened yet. And it
 * lives in a directory only its owner and group can enter (0750), which
 * also covers anything that ever loosens the socket's own mode.
 */
import { existsSync, lstatSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import type { Server } from "node:http";
import { dirname } from "node:path";
import { ScopeError } from "../core/errors.js";

export const ADMIN_SOCKET_MODE = 0o660;
export const ADMIN_DIR_MODE = 0o750;
/** Requests one admin connection may carry before the server closes it (bodies are capped in body.ts). */
export const ADMIN_REQUESTS_PER_CONNECTION = 100;
/** Admin connections open at once: the CLI opens one per command. */
export const ADMIN_MAX_CONNECTIONS = 32;

/** Bounds on what one local client can hold open on the admin socket. */
export function boundAdminServer(server: Server): void {
  server.maxRequestsPerSocket = ADMIN_REQUESTS_PER_CONNECTION;
  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;
}

/** Makes the directory (0750) or checks that others cannot enter it; removes a stale socket. */
export function prepareAdminSocket(path: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: ADMIN_DIR_MODE });
  const mode = statSync(dir).mode & 0o777;
  if (mode & 0o007) {
    throw new ScopeError(
      "config",
      `admin_socket: ${dir} is open to every user (mode ${mode.toString(8)}); ` +
        `give the socket a directory of its own, mode 0750 (the package uses /run/scope/registry/)`,
    );
  }
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}

/** Listens on the socket path with the umask that gives it ADMIN_SOCKET_MODE from the start. */
export function listenAdminSocket(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const old = process.umask(0o777 & ~ADMIN_SOCKET_MODE);
    try {
      server.listen({ path }, () => {
        server.off("error", reject);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
}
