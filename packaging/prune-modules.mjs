// Deletes from a production node_modules what Scope never loads at run time:
// install-time helpers (better-sqlite3's prebuild-install; the binary is
// copied in) and dbus-next's optional native usocket, which is never built
// here (npm ci --ignore-scripts) and whose only dependency is node-gyp.
// Walks package-lock.json from the root's dependencies with Node's lookup
// rule (nearest node_modules upward), keeps that closure, deletes the rest.
// Also drops the dot files and directories that some packages publish
// (editor and tool settings such as .jshintrc, .claude/): never loaded, and
// rpmlint and lintian count each as a hidden file.
//
//   node prune-modules.mjs DIR     (DIR holds package-lock.json and node_modules)
import { readdirSync, readFileSync, rmSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";

const SKIP = new Set(["prebuild-install", "usocket"]);
const dir = process.argv[2];
const { packages } = JSON.parse(readFileSync(join(dir, "package-lock.json"), "utf8"));

/** Where `name`, required from the package at `from`, resolves ("" is the root). */
function resolve(from, name) {
  for (let base = from; ;) {
    const path = `${base ? `${base}/` : ""}node_modules/${name}`;
    if (packages[path]) return path;
    if (!base) return undefined;
    const i = base.lastIndexOf("/node_modules/");
    base = i < 0 ? "" : base.slice(0, i);
  }
}

const keep = new Set();
const todo = [""];
while (todo.length) {
  const from = todo.pop();
  const p = packages[from];
  for (const name of Object.keys({ ...p.dependencies, ...p.optionalDependencies })) {
    if (SKIP.has(name)) continue;
    const path = resolve(from, name);
    if (path && !keep.has(path) && !packages[path].dev) {
      keep.add(path);
      todo.push(path);
    }
  }
}
let dropped = 0;
for (const path of Object.keys(packages).sort()) {
  if (!path || keep.has(path)) continue;
  // A nested path under an already deleted one is gone with it.
  rmSync(join(dir, path), { recursive: true, force: true });
  dropped++;
}
/** Removes every entry named .* under `path` (not the .bin links npm makes in node_modules itself). */
function dropDotEntries(path) {
  let n = 0;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, e.name);
    if (e.name.startsWith(".") && e.name !== ".bin") {
      rmSync(full, { recursive: true, force: true });
      n++;
    } else if (e.isDirectory()) n += dropDotEntries(full);
  }
  return n;
}
const dots = dropDotEntries(join(dir, "node_modules"));
process.stderr.write(`prune-modules: kept ${keep.size} packages, dropped ${dropped}, ${dots} dot files\n`);
