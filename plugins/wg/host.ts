/**
 * The few host effects besides exec and the UAPI socket: the pid file of a
 * wireguard-go we started, signals, waiting. Behind an interface so unit
 * tests run without a filesystem or real time.
 */
import { access, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

export interface Host {
  exists(path: string): Promise<boolean>;
  /** undefined when the file does not exist. */
  readText(path: string): Promise<string | undefined>;
  /** Creates the parent directory (0700) if needed; the file is 0600. */
  writeText(path: string, text: string): Promise<void>;
  remove(path: string): Promise<void>;
  /** False when the process does not exist. */
  kill(pid: number, signal: NodeJS.Signals): boolean;
  sleep(ms: number): Promise<void>;
}

export const nodeHost: Host = {
  exists: (path) =>
    access(path).then(
      () => true,
      () => false,
    ),
  readText: (path) => readFile(path, "utf8").catch(() => undefined),
  writeText: async (path, text) => {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, text, { mode: 0o600 });
  },
  remove: (path) => rm(path, { force: true }),
  kill: (pid, signal) => {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  },
  sleep: (ms) => delay(ms),
};
