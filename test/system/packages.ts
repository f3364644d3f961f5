// Builds Scope's packages for the package cases (packaging/build.sh, from the
// dist/ this run was started with), once per version per process, and keeps
// the flat apt repository the containers install from.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir, mustRun, repoRoot } from "./host.js";

export interface Built {
  version: string;
  dir: string;
  deb: string;
  rpm?: string;
  /** Installed-Size of the .deb, KiB. */
  installedKiB: number;
}

const built = new Map<string, Promise<Built>>();

export function baseVersion(): string {
  return (JSON.parse(readFileSync(join(repoRoot(), "package.json"), "utf8")) as { version: string }).version;
}

/** packaging/build.sh into OUT/VERSION (memoized per version); rpm too when asked. */
export function buildPackages(out: string, version = baseVersion(), rpm = false): Promise<Built> {
  const key = `${version}${rpm ? "+rpm" : ""}`;
  let p = built.get(key);
  if (!p) {
    p = (async () => {
      const dir = join(out, key);
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        SCOPE_PKG_OUT: dir,
        SCOPE_PKG_VERSION: version,
        SCOPE_PKG_NO_TSC: "1",
        // Production node_modules survive runs (npm ci needs the registry).
        SCOPE_PKG_CACHE: join(cacheDir(), "pkg-node-modules"),
      };
      if (!rpm) env.SCOPE_PKG_NO_RPM = "1";
      await mustRun("bash", [join(repoRoot(), "packaging", "build.sh")], { env, cwd: repoRoot() });
      const files = readdirSync(dir);
      const deb = join(
        dir,
        files.find((f) => f.endsWith(".deb"))!,
      );
      const rpmFile = files.find((f) => f.endsWith(".rpm"));
      const info = await mustRun("dpkg-deb", ["-f", deb, "Installed-Size"]);
      return {
        version,
        dir,
        deb,
        ...(rpmFile ? { rpm: join(dir, rpmFile) } : {}),
        installedKiB: Number(info.stdout.trim()),
      };
    })();
    built.set(key, p);
  }
  return p;
}

/** Put debs into a flat repository and index it (deb [trusted=yes] file:DIR ./). */
export async function publish(aptDir: string, debs: string[]): Promise<void> {
  mkdirSync(aptDir, { recursive: true });
  for (const d of debs) copyFileSync(d, join(aptDir, d.split("/").pop()!));
  const idx = await mustRun("dpkg-scanpackages", ["--multiversion", "."], { cwd: aptDir });
  writeFileSync(join(aptDir, "Packages"), idx.stdout);
}

export const kib = (file: string): number => Math.round(statSync(file).size / 1024);
