// One lab per machine at a time. Lab.create removes every object with the lab
// prefix, so a second process (another developer's run, a parallel CI job)
// would destroy a live lab. A lock file holding the owner's pid queues labs
// instead; a lock whose pid is dead is stale (crashed run) and taken over.

import { linkSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { waitFor } from "./wait.js";
import { LAB_PREFIX } from "./world.js";

export const LAB_LOCK = `/run/${LAB_PREFIX}lab.lock`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function owner(): number | undefined {
  try {
    const pid = Number(readFileSync(LAB_LOCK, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Pid of another live process holding the lock, if any. */
export function labLockHolder(): number | undefined {
  const pid = owner();
  return pid !== undefined && pid !== process.pid && alive(pid) ? pid : undefined;
}

/** One attempt: true when this process now holds the lock. */
function tryLock(): boolean {
  // The pid is written to a file of our own first and then linked into
  // place: link() is atomic and fails if the lock exists, so the lock file is
  // never seen empty. (Created with "wx" and written after, a waiter reading
  // it in between took it for stale and a second lab destroyed the first.)
  const held = owner();
  if (held === process.pid) return true;
  if (held !== undefined && alive(held)) return false; // the usual wait: no file written per poll
  const mine = `${LAB_LOCK}.${process.pid}`;
  try {
    writeFileSync(mine, `${process.pid}\n`);
    linkSync(mine, LAB_LOCK);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    rmSync(mine, { force: true });
  }
  const pid = owner();
  if (pid === process.pid) return true;
  if (pid === undefined || !alive(pid)) {
    // Stale; unlink and let the next attempt race fairly through "wx".
    try {
      unlinkSync(LAB_LOCK);
    } catch {
      // another waiter removed it first
    }
  }
  return false;
}

/** Waits until no other live process holds the lab lock, then takes it. */
export async function acquireLabLock(timeoutMs = 10 * 60_000): Promise<void> {
  if (tryLock()) return;
  console.error(`lab: waiting for the lab lock ${LAB_LOCK} held by pid ${owner() ?? "?"}`);
  await waitFor(tryLock, { timeoutMs, intervalMs: 200, what: `lab lock ${LAB_LOCK}` });
}

/** Releases the lock if this process holds it. Synchronous for exit handlers. */
export function releaseLabLock(): void {
  if (owner() !== process.pid) return;
  try {
    unlinkSync(LAB_LOCK);
  } catch {
    // already gone
  }
}
