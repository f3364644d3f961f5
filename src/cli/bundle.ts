/**
 * Bundles the CLI (dist/src/cli/run.js and every module it loads, with the
 * built-in backend plugins as lazy chunks) into dist/src/bundle/ with
 * esbuild, so a `scope` start reads and compiles a few files instead of
 * ~200 (zod alone is 95). Run by `npm run build` after tsc, and by
 * packaging/build.sh; main.ts uses it only while inputs.json still matches
 * every input. esbuild is a devDependency: this file is never installed.
 *
 * Kept out (loaded from node_modules when needed): native and server-only
 * packages (the registry's koa, pg, SQLite; D-Bus). Every `import.meta.url`
 * in our modules is rewritten to the module's own dist path, so files found
 * beside a module (package.json, the web view, plugins, main.js for a
 * spawned daemon) are found as without the bundle.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { Plugin } from "esbuild";
import { BUNDLE_DIR, STAMP_FILE, type BundleStamp } from "./main.js";

const DIST = fileURLToPath(new URL("../../", import.meta.url));
const OUT = fileURLToPath(BUNDLE_DIR);
const ENTRY = "cli";
/** What stays in node_modules: native, or only the registry or D-Bus needs it. */
export const BUNDLE_EXTERNAL = [
  "better-sqlite3",
  "pg",
  "koa",
  "@koa/router",
  "rate-limiter-flexible",
  "dbus-next",
] as const;

/** Each of our modules sees its own dist URL as import.meta.url (every output file sits in OUT). */
const ownUrl: Plugin = {
  name: "own-import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(DIST) || args.path.includes("/node_modules/")) return undefined;
      const text = readFileSync(args.path, "utf8");
      if (!text.includes("import.meta.url")) return { contents: text, loader: "js" };
      const rel = JSON.stringify(relative(OUT, args.path));
      return {
        contents: text.replaceAll("import.meta.url", `new URL(${rel}, import.meta.url).href`),
        loader: "js",
      };
    });
  },
};

export async function buildBundle(): Promise<{ files: number; bytes: number; inputs: number }> {
  const { build } = await import("esbuild");
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const r = await build({
    entryPoints: { [ENTRY]: `${DIST}src/cli/run.js` },
    bundle: true,
    splitting: true,
    chunkNames: "chunk-[hash]",
    format: "esm",
    platform: "node",
    target: "node20",
    outdir: OUT,
    // Names stay (stack traces, error classes); whitespace and syntax go.
    minifyWhitespace: true,
    minifySyntax: true,
    external: [...BUNDLE_EXTERNAL],
    // A CommonJS dependency (ini) may require() a node built-in.
    banner: {
      js: 'import { createRequire as __scopeRequire } from "node:module"; const require = __scopeRequire(import.meta.url);',
    },
    plugins: [ownUrl],
    metafile: true,
    logLevel: "warning",
  });
  const inputs: BundleStamp["inputs"] = {};
  for (const p of Object.keys(r.metafile.inputs)) {
    const abs = p.startsWith("/") ? p : `${process.cwd()}/${p}`;
    const s = statSync(abs);
    inputs[relative(OUT, abs)] = [s.size, s.mtimeMs];
  }
  const stamp: BundleStamp = { entry: `${ENTRY}.js`, inputs };
  writeFileSync(`${OUT}${STAMP_FILE}`, JSON.stringify(stamp) + "\n");
  const outs = Object.values(r.metafile.outputs);
  return {
    files: outs.length,
    bytes: outs.reduce((n, o) => n + o.bytes, 0),
    inputs: Object.keys(inputs).length,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await buildBundle();
  console.log(
    `cli bundle: ${r.files} files, ${(r.bytes / 1024).toFixed(0)} KiB, from ${r.inputs} modules, in ${OUT}`,
  );
}
