/**
 * Builds the web view (issue 16) into dist/src/registry/ui/static, where
 * routes/ui.ts serves it from: the page script and cytoscape bundled and
 * minified by esbuild, the HTML and CSS copied. Run by `npm run build`
 * after tsc (and by packaging/build.sh); the registry tier's page tests call
 * buildUi() when the bundle is missing. esbuild is a devDependency, so this
 * file is never loaded by the installed registry.
 */
import { copyFileSync, mkdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UI_DIR } from "../routes/ui.js";

/** dist/src/registry/ui/build.js → the checkout's src/registry/ui. */
const SRC = fileURLToPath(new URL("../../../../src/registry/ui/", import.meta.url));

export async function buildUi(): Promise<{ bundleBytes: number; dir: string }> {
  const { build } = await import("esbuild");
  const out = fileURLToPath(UI_DIR);
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [`${SRC}client/app.ts`],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    outfile: `${out}app.js`,
    // The licence notices stay inside app.js: no extra file for the packages to explain.
    legalComments: "eof",
    logLevel: "warning",
  });
  for (const f of ["index.html", "app.css"]) copyFileSync(`${SRC}static-src/${f}`, `${out}${f}`);
  return { bundleBytes: statSync(`${out}app.js`).size, dir: out };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await buildUi();
  console.log(`web view: app.js ${(r.bundleBytes / 1024).toFixed(1)} KiB in ${r.dir}`);
}
