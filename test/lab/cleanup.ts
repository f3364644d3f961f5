// Removes everything any lab run ever made, found by LAB_PREFIX rather than by
// remembered state, so it also cleans up after a run that was SIGKILLed.
// Synchronous on purpose: it runs from process "exit" handlers, where no
// promise can settle.
//
//   node dist/test/lab/cleanup.js [--force]   (prints what it removed; --force
//   also when a live lab holds the lock)

import { readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { LAB_LOCK, labLockHolder } from "./lock.js";
import { runSync } from "./netns.js";
import { LAB_PREFIX } from "./world.js";

export const WG_SOCKET_DIR = "/var/run/wireguard";
/** mkdtemp prefix of per-run scratch directories (keys, logs). */
export const LAB_TMP_PREFIX = `${LAB_PREFIX}lab-`;

export interface CleanupReport {
  readonly namespaces: string[];
  readonly killed: number[];
  readonly sockets: string[];
  readonly tmpDirs: string[];
}

export function labNamespaces(): string[] {
  return runSync(["ip", "netns", "list"])
    .stdout.split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(LAB_PREFIX));
}

/** Kills every lab process, deletes every lab namespace, socket and scratch dir. */
export function cleanupLab(): CleanupReport {
  const namespaces = labNamespaces();
  const pids = new Set<number>();
  for (const ns of namespaces) {
    for (const pid of runSync(["ip", "netns", "pids", ns]).stdout.split(/\s+/)) {
      if (pid !== "") pids.add(Number(pid));
    }
  }
  // A wireguard-go whose namespace name is already gone still holds a socket.
  for (const pid of strayWireguardGo()) pids.add(pid);
  const killed = killAll([...pids]);
  for (const ns of namespaces) runSync(["ip", "netns", "delete", ns]);
  const sockets = removeMatching(WG_SOCKET_DIR, (f) => f.startsWith(LAB_PREFIX) && f.endsWith(".sock"));
  const tmpDirs = removeMatching(tmpdir(), (f) => f.startsWith(LAB_TMP_PREFIX));
  return { namespaces, killed, sockets, tmpDirs };
}

/** SIGTERM (wireguard-go then removes its own socket), then SIGKILL what is left after 2 s. */
function killAll(pids: number[]): number[] {
  const signal = (pid: number, sig: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false; // already gone
    }
  };
  const alive = pids.filter((pid) => pid !== process.pid && signal(pid, "SIGTERM"));
  const deadline = Date.now() + 2000;
  let left = alive;
  while (left.length > 0 && Date.now() < deadline) {
    sleepSync(20);
    left = left.filter((pid) => signal(pid, 0));
  }
  for (const pid of left) signal(pid, "SIGKILL");
  return alive;
}

function strayWireguardGo(): number[] {
  const found: number[] = [];
  for (const entry of safeReaddir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited while we looked
    }
    if (argv[0]?.endsWith("wireguard-go") && argv.some((a) => a.startsWith(LAB_PREFIX)))
      found.push(Number(entry));
  }
  return found;
}

function removeMatching(dir: string, match: (name: string) => boolean): string[] {
  const removed = safeReaddir(dir)
    .filter(match)
    .map((f) => join(dir, f));
  for (const path of removed) rmSync(path, { recursive: true, force: true });
  return removed;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const holder = labLockHolder();
  if (holder !== undefined && !process.argv.includes("--force")) {
    console.error(`cleanup: a live lab (pid ${holder}) holds ${LAB_LOCK}; stop it, or pass --force`);
    process.exit(1);
  }
  const report = cleanupLab();
  if (holder !== undefined) rmSync(LAB_LOCK, { force: true });
  console.log(
    `cleanup: ${report.namespaces.length} namespaces, ${report.killed.length} processes, ` +
      `${report.sockets.length} sockets, ${report.tmpDirs.length} scratch dirs removed`,
  );
  for (const ns of labNamespaces()) console.error(`cleanup: namespace ${ns} is still there`);
}
