/**
 * File placement: the one place that touches /etc/systemd/network. Behind a
 * small FileSystem seam so tests run on memory (networkd/testing.ts).
 *
 * Contract of placeFiles:
 * - every file lands atomically: written to a temp file in the same
 *   directory as 0600, chowned, chmodded, fsynced, then renamed over the
 *   old one, so networkd never reads half a file or a key with a loose mode;
 * - a file whose bytes are already right is not rewritten (its owner and
 *   mode are repaired in place if someone changed them);
 * - key files are placed before the .netdev that names them, and stale ones
 *   removed after it, so the .netdev never points at a missing key;
 * - only names starting with the network's prefix are ever removed.
 */
import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import type { RenderedFile } from "./render.js";

export interface FileStat {
  uid: number;
  gid: number;
  /** Permission bits only (e.g. 0o640). */
  mode: number;
}

export interface FileSystem {
  /** undefined when the file does not exist. */
  readFile(path: string): Promise<string | undefined>;
  stat(path: string): Promise<FileStat | undefined>;
  /** Names in dir; empty when dir does not exist. */
  readdir(dir: string): Promise<string[]>;
  /** Creates path (failing if it exists) with mode, writes content and flushes it to disk. */
  createExclusive(path: string, content: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** No error when the file is already gone. */
  unlink(path: string): Promise<void>;
  /** Makes renames and unlinks in dir durable (fsync on the directory). */
  syncDir(dir: string): Promise<void>;
}

const isErrno = (e: unknown, code: string): boolean => (e as NodeJS.ErrnoException)?.code === code;

async function orMissing<T>(p: Promise<T>, missing: T): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (isErrno(e, "ENOENT")) return missing;
    throw e;
  }
}

export const realFileSystem: FileSystem = {
  readFile: (path) => orMissing(fsp.readFile(path, "utf8"), undefined),
  stat: async (path) => {
    const s = await orMissing(fsp.stat(path), undefined);
    return s && { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 };
  },
  readdir: (dir) => orMissing(fsp.readdir(dir), []),
  createExclusive: async (path, content, mode) => {
    const fh = await fsp.open(path, "wx", mode);
    try {
      await fh.writeFile(content, "utf8");
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  chown: (path, uid, gid) => fsp.chown(path, uid, gid),
  chmod: (path, mode) => fsp.chmod(path, mode),
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => orMissing(fsp.unlink(path), undefined),
  syncDir: async (dir) => {
    const fh = await fsp.open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

export interface Ownership {
  uid: number;
  gid: number;
  mode: number;
  /** Set when the systemd-network group was not found and files fall back to root. */
  note?: string;
}

/** networkd runs as user systemd-network and reads key files through its group (systemd.netdev(5)). */
export const NETWORKD_GROUP = "systemd-network";
export const FILE_MODE = 0o640;

/**
 * root:systemd-network 0640, the gid looked up in /etc/group (systemd-sysusers
 * allocates the group there). Without the group networkd is probably not
 * installed; the files still get written, as root:root, and the note says why.
 */
export async function resolveOwnership(fs: FileSystem, groupFile = "/etc/group"): Promise<Ownership> {
  const text = (await fs.readFile(groupFile)) ?? "";
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === NETWORKD_GROUP && gid !== undefined && /^\d+$/.test(gid))
      return { uid: 0, gid: Number(gid), mode: FILE_MODE };
  }
  return {
    uid: 0,
    gid: 0,
    mode: FILE_MODE,
    note: `group ${NETWORKD_GROUP} not found in ${groupFile}: files are root:root 0640, which networkd (running as ${NETWORKD_GROUP}) cannot read`,
  };
}

export interface PlaceResult {
  /** Names whose content was created or replaced. */
  written: string[];
  /** Names whose content was right but owner or mode was not, repaired in place. */
  repaired: string[];
  /** Own files that are no longer wanted, now deleted. */
  removed: string[];
}

const TEMP_MARK = ".scope-tmp-";
const join = (dir: string, name: string): string => `${dir.replace(/\/+$/, "")}/${name}`;
/** Our temp files start with "." and the network prefix, so a crash leaves nothing networkd reads (wrong suffix) and nothing we cannot find. */
const isOwnTemp = (name: string, prefix: string): boolean =>
  name.startsWith(`.${prefix}`) && name.includes(TEMP_MARK);

async function writeAtomic(fs: FileSystem, dir: string, f: RenderedFile, own: Ownership): Promise<void> {
  const tmp = join(dir, `.${f.name}${TEMP_MARK}${randomBytes(6).toString("hex")}`);
  try {
    // 0600 first: until the chown the group may be anything, and the content may be a key.
    await fs.createExclusive(tmp, f.content, 0o600);
    await fs.chown(tmp, own.uid, own.gid);
    await fs.chmod(tmp, own.mode);
    await fs.rename(tmp, join(dir, f.name));
  } catch (e) {
    await fs.unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** Makes dir hold exactly `files` among the names starting with prefix. */
export async function placeFiles(
  fs: FileSystem,
  dir: string,
  prefix: string,
  files: readonly RenderedFile[],
  own: Ownership,
): Promise<PlaceResult> {
  for (const f of files)
    if (!f.name.startsWith(prefix) || f.name.includes("/"))
      throw new Error(`refusing to place ${f.name}: not under prefix ${prefix}`);
  const result: PlaceResult = { written: [], repaired: [], removed: [] };
  // Keys first, then the files that name them.
  const ordered = [...files.filter((f) => f.secret), ...files.filter((f) => !f.secret)];
  for (const f of ordered) {
    const path = join(dir, f.name);
    if ((await fs.readFile(path)) === f.content) {
      const st = await fs.stat(path);
      if (st && (st.uid !== own.uid || st.gid !== own.gid || st.mode !== own.mode)) {
        await fs.chown(path, own.uid, own.gid);
        await fs.chmod(path, own.mode);
        result.repaired.push(f.name);
      }
      continue;
    }
    await writeAtomic(fs, dir, f, own);
    result.written.push(f.name);
  }
  const wanted = new Set(files.map((f) => f.name));
  for (const name of (await fs.readdir(dir)).sort()) {
    if ((name.startsWith(prefix) && !wanted.has(name)) || isOwnTemp(name, prefix)) {
      await fs.unlink(join(dir, name));
      result.removed.push(name);
    }
  }
  if (result.written.length || result.removed.length) await fs.syncDir(dir);
  return result;
}

/** Deletes every file of this network (and leftover temp files); returns the names. */
export async function removeFiles(fs: FileSystem, dir: string, prefix: string): Promise<string[]> {
  const removed: string[] = [];
  // The .netdev goes first so networkd never sees it without its key.
  const names = (await fs.readdir(dir)).filter((n) => n.startsWith(prefix) || isOwnTemp(n, prefix));
  names.sort((a, b) => Number(b.endsWith(".netdev")) - Number(a.endsWith(".netdev")) || (a < b ? -1 : 1));
  for (const name of names) {
    await fs.unlink(join(dir, name));
    removed.push(name);
  }
  if (removed.length) await fs.syncDir(dir);
  return removed;
}
