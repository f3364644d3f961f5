/**
 * Child process of durable-files.test.ts: rewrites an edge's key, join and
 * config files in a loop, with the functions `scope join` uses, until it is
 * killed. Argument: a directory holding a whole set (copied from a real
 * join); every rewrite is a valid file, so any partial one is the writer's
 * fault, never the content's.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic, writePrivateFile } from "../../src/daemon/files.js";

const [dir = ""] = process.argv.slice(2);
const state = join(dir, "state", "test");
const files: [string, string, number][] = [
  [join(state, "identity.key"), readFileSync(join(state, "identity.key"), "utf8"), 0o600],
  [join(state, "wg.key"), readFileSync(join(state, "wg.key"), "utf8"), 0o600],
  [join(state, "join.json"), readFileSync(join(state, "join.json"), "utf8"), 0o600],
  [join(dir, "etc", "test.conf"), readFileSync(join(dir, "etc", "test.conf"), "utf8"), 0o640],
];
process.stdout.write("ready\n");
for (;;)
  for (const [path, text, mode] of files)
    await (mode === 0o600 ? writePrivateFile(path, text, mode) : writeFileAtomic(path, text, mode));
