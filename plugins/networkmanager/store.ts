/**
 * Where the plugin remembers which NM profile is Scope's: its uuid, in
 * the network's state directory (0700 root). With it a profile deleted
 * while the daemon was down is told apart from one never created; the
 * profile's name alone ("Scope NET") could be taken by a hand-made copy.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface ProfileStore {
  load(): Promise<string | undefined>;
  save(uuid: string): Promise<void>;
  clear(): Promise<void>;
}

export const PROFILE_FILE = "networkmanager-profile";

export function fileProfileStore(stateDir: string): ProfileStore {
  const file = join(stateDir, PROFILE_FILE);
  return {
    async load() {
      try {
        return (await readFile(file, "utf8")).trim() || undefined;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
    },
    async save(uuid) {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      await writeFile(file, `${uuid}\n`, { mode: 0o600 });
    },
    async clear() {
      await rm(file, { force: true });
    },
  };
}

/** For tests and for callers without a state directory. */
export function memoryProfileStore(initial?: string): ProfileStore & { uuid: string | undefined } {
  const s = {
    uuid: initial,
    async load() {
      return s.uuid;
    },
    async save(uuid: string) {
      s.uuid = uuid;
    },
    async clear() {
      s.uuid = undefined;
    },
  };
  return s;
}
