/**
 * Builds the web view (issue 16) into dist/src/registry/ui/static, where
 * routes/ui.ts serves it from: the page script bundled and minified by
 * esbuild into app.js, cytoscape (imported only for meshes small enough
 * for it, app.ts) split into a chunk-HASH.js of its own so a big mesh's
 * page never loads it; the HTML and CSS copied. Run by `npm run build`
 * after tsc (and by packaging/build.sh); the registry tier's page tests call
 * buildUi() when the bundle is missing. esbuild is a devDependency, so this
 * file is never loaded by the installed registry.
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CHUNK, UI_DIR } from "../routes/ui.js";

/** dist/src/registry/ui/build.js → the checkout's src/registry/ui. */
const SRC = fileURLToPath(new URL("../../../../src/registry/ui/", import.meta.url));

export interface BuiltUi {
  /** app.js: what every page loads. */
  bundleBytes: number;
  /** app.js and its chunks (cytoscape): what a page of a small mesh loads. */
  totalBytes: number;
  dir: string;
}

export async function buildUi(): Promise<BuiltUi> {
  const { build } = await import("esbuild");
  const out = fileURLToPath(UI_DIR);
  mkdirSync(out, { recursive: true });
  // Chunks of an older build (their names are hashes) would be shipped in the packages.
  for (const f of readdirSync(out)) if (CHUNK.test(f)) rmSync(`${out}${f}`);
  await build({
    entryPoints: [`${SRC}client/app.ts`],
    bundle: true,
    splitting: true,
    chunkNames: "chunk-[hash]",
    minify: true,
    format: "esm",
    target: "es2022",
    outdir: out,
    // The licence notices stay inside app.js: no extra file for the packages to explain.
    legalComments: "eof",
    logLevel: "warning",
  });
  for (const f of ["index.html", "app.css"]) copyFileSync(`${SRC}static-src/${f}`, `${out}${f}`);
  return builtUi();
}

/** The sizes of the bundle built in UI_DIR. */
export function builtUi(): BuiltUi {
  const out = fileURLToPath(UI_DIR);
  const js = readdirSync(out).filter((f) => f === "app.js" || CHUNK.test(f));
  const size = (f: string) => statSync(`${out}${f}`).size;
  return { bundleBytes: size("app.js"), totalBytes: js.reduce((n, f) => n + size(f), 0), dir: out };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await buildUi();
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(
    `web view: app.js ${kib(r.bundleBytes)}, with cytoscape's chunk ${kib(r.totalBytes)}, in ${r.dir}`,
  );
}
