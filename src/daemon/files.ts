/**
 * Where an edge keeps things (DESIGN §8) and how: keys as base64 in 0600
 * files under a 0700 state directory, the config 0640, the cached join
 * answer as JSON. Shared by `scope join`, the daemon and `scope leave`.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { ScopeError } from "../core/errors.js";
import { registerSecret } from "../log.js";
import { Key32, Network, Peer, Port } from "../core/protocol.js";
import { identityFromSecret, wgKeyPairFromPrivate, type Identity, type WgKeyPair } from "../crypto/keys.js";

export const DEFAULT_CONFIG_DIR = "/etc/scope";
export const DEFAULT_STATE_ROOT = "/var/lib/scope";
export const DEFAULT_RUN_DIR = "/run/scope";

export const configPath = (configDir: string, network: string): string => join(configDir, `${network}.conf`);
export const stateDirOf = (stateRoot: string, network: string): string => join(stateRoot, network);
export const controlSocketOf = (network: string): string => join(DEFAULT_RUN_DIR, `${network}.sock`);
export const JOIN_FILE = "join.json";

/**
 * Writes path so that a kill or a power cut at any moment leaves the old
 * file or the new one, never an empty or partial one (issue 14, acceptance
 * 7): a temp file in the same directory, created with the mode and
 * fchmod'ed to it (whatever the umask), written and fsync'ed, renamed over
 * path, then the directory fsync'ed so the rename itself is on disk. The
 * new file's mode is `mode` even when path existed with a looser one. Temp
 * files a killed writer left behind (they may hold a key) are removed first.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const dir = dirname(path);
  await removeStaleTemps(dir, basename(path));
  const tmp = join(dir, `${tempPrefix(basename(path))}${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx", mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(data, "utf8");
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

const tempPrefix = (base: string): string => `.${base}.`;

async function removeStaleTemps(dir: string, base: string): Promise<void> {
  const prefix = tempPrefix(base);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const pid = Number(name.slice(prefix.length).split(".")[0]);
    if (!name.startsWith(prefix) || !name.endsWith(".tmp") || !Number.isInteger(pid) || alive(pid)) continue;
    await rm(join(dir, name), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A key or state file: 0600 (or mode) in a 0700 directory, written atomically. */
export async function writePrivateFile(path: string, data: string, mode = 0o600): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, data, mode);
}

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (e) {
    throw new ScopeError("config", `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}

export async function loadIdentity(path: string): Promise<Identity> {
  const text = await readKeyFile(path, "identity key");
  registerSecret(text);
  const raw = Buffer.from(text, "base64");
  if (raw.length !== 32) throw new ScopeError("config", `${path}: identity key must be 32 bytes of base64`);
  return identityFromSecret(raw);
}

export async function loadWgKey(path: string): Promise<WgKeyPair> {
  try {
    const text = await readKeyFile(path, "WireGuard private key");
    registerSecret(text);
    return wgKeyPairFromPrivate(text);
  } catch (e) {
    if (e instanceof ScopeError) throw e;
    throw new ScopeError("config", `${path}: not a WireGuard private key`);
  }
}

export function identityFileText(id: Identity): string {
  const text = Buffer.from(id.secretKey).toString("base64");
  registerSecret(text);
  return text + "\n";
}

/** What `scope join` learned and the daemon needs on every start (the token is not kept). */
export const JoinState = z.object({
  network: Network,
  self: Peer,
  registryKey: Key32,
  reflectorPorts: z.tuple([Port, Port]),
});
export type JoinState = z.infer<typeof JoinState>;

export async function readJoinState(stateDir: string): Promise<JoinState> {
  const path = join(stateDir, JOIN_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new ScopeError("config", `${path} is missing: run 'scope join' first`);
  }
  const parsed = JoinState.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new ScopeError("config", `${path}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  return parsed.data;
}

export const writeJoinState = (stateDir: string, s: JoinState): Promise<void> =>
  writePrivateFile(join(stateDir, JOIN_FILE), JSON.stringify(s, null, 2) + "\n");
