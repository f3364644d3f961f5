#!/usr/bin/env node
/**
 * `scope`'s entry (bin, packaging/scope.sh). It loads the CLI (run.ts) from
 * the bundle in dist/src/bundle/ (bundle.ts: one file for the code every
 * start needs, instead of ~200 modules) when that was built from exactly the
 * files beside it, else from the modules themselves: after a `tsc` that
 * changed any of them, the CLI runs what tsc wrote, never a stale bundle.
 * SCOPE_NO_BUNDLE=1 always takes the modules.
 */
import { readFileSync, realpathSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CommandIO } from "./command.js";

type Cli = typeof import("./run.js");

/** Where bundle.ts writes the bundle and its stamp. */
export const BUNDLE_DIR = new URL("../bundle/", import.meta.url);
export const STAMP_FILE = "inputs.json";

/**
 * inputs.json: the entry and, per input (path relative to the bundle's
 * folder), its size and mtime at bundling. `sealed`: a package's tree
 * (packaging/build.sh), never rebuilt in place, so nothing is checked.
 */
export interface BundleStamp {
  entry: string;
  inputs: Record<string, [size: number, mtimeMs: number]>;
  sealed?: true;
}

/** The bundle's entry when every input is as it was bundled (a package's tree never changes: `sealed`), else undefined. */
export function freshBundle(dir: URL = BUNDLE_DIR): URL | undefined {
  try {
    const stamp = JSON.parse(readFileSync(new URL(STAMP_FILE, dir), "utf8")) as BundleStamp;
    if (stamp.sealed !== true)
      for (const [rel, [size, mtimeMs]] of Object.entries(stamp.inputs)) {
        const s = statSync(new URL(rel, dir));
        if (s.size !== size || s.mtimeMs !== mtimeMs) return undefined;
      }
    return new URL(stamp.entry, dir);
  } catch {
    return undefined;
  }
}

/** The CLI: the bundle when fresh, else the modules. */
export function loadCli(env: NodeJS.ProcessEnv = process.env): Promise<Cli> {
  const bundle = env.SCOPE_NO_BUNDLE ? undefined : freshBundle();
  return bundle ? (import(bundle.href) as Promise<Cli>) : import("./run.js");
}

/** For tests: the CLI from the modules, argv without "node scope". */
export async function main(argv: string[], io: CommandIO): Promise<number> {
  return (await import("./run.js")).main(argv, io);
}

// Run when executed as the `scope` binary (not when imported by tests).
function invokedDirectly(): boolean {
  try {
    return realpathSync(process.argv[1] ?? "") === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  const io: CommandIO = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  };
  loadCli()
    .then((cli) => cli.main(process.argv.slice(2), io))
    .then(
      (code) => {
        process.exitCode = code;
      },
      (e: unknown) => {
        process.stderr.write(`scope: internal error: ${String(e)}\n`);
        process.exitCode = 1;
      },
    );
}
