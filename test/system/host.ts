// Host-side glue for the VM tier: where the repo is, how to run a command,
// which host packages the tier needs and which accelerator QEMU can use.
import { spawn, type StdioOptions } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Repo root, found by walking up so it works from test/system and dist/test/system alike. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "scope") {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("system tests: cannot find the scope repo root");
    dir = up;
  }
}

/** Source folder of the tier: the shell glue is read from here, not from dist/ (tsc copies no .sh). */
export function systemDir(): string {
  return join(repoRoot(), "test", "system");
}

export function cacheDir(): string {
  return process.env.SCOPE_SYSTEM_CACHE ?? join(systemDir(), "cache");
}

export interface RunOptions {
  cwd?: string;
  /** Text piped to stdin (e.g. a script for `chroot DIR /bin/sh -s`). */
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Stream output to our stderr instead of collecting it (long builds show progress). */
  inherit?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion; never throws on a non-zero exit (callers decide). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // With inherit, stdout also goes to our stderr so run.ts's stdout stays a clean report.
    const out = opts.inherit ? process.stderr : "pipe";
    const stdio: StdioOptions = [opts.input === undefined ? "ignore" : "pipe", out, out];
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run() but throws with the command's stderr when it fails. */
export async function mustRun(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const res = await run(cmd, args, opts);
  if (res.code !== 0) {
    const tail = (res.stderr || res.stdout).trim().split("\n").slice(-20).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} exited ${res.code}${tail ? `:\n${tail}` : ""}`);
  }
  return res;
}

export function hasCommand(name: string): boolean {
  const path = process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin";
  // debootstrap and mkfs live in sbin, which a non-login root shell may lack in PATH.
  const dirs = [...path.split(":"), "/usr/sbin", "/sbin"];
  return dirs.some((d) => d && existsSync(join(d, name)));
}

/** Host packages the tier needs, by a command each one provides. */
export const HOST_PACKAGES: Record<string, string> = {
  debootstrap: "debootstrap",
  "qemu-system-x86": "qemu-system-x86_64",
  "qemu-utils": "qemu-img",
  e2fsprogs: "mkfs.ext4",
};

/**
 * Install missing host packages. Idempotent: nothing runs when all commands exist.
 * A stale apt index is the usual cause of a failed install, so update once and retry.
 */
export async function ensureHostPackages(): Promise<void> {
  const missing = Object.entries(HOST_PACKAGES)
    .filter(([, cmd]) => !hasCommand(cmd))
    .map(([pkg]) => pkg);
  if (missing.length === 0) return;
  log(`installing host packages: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const args = ["install", "-y", "--no-install-recommends", ...missing];
  if ((await run("apt-get", args, { env, inherit: true })).code === 0) return;
  await mustRun("apt-get", ["update"], { env, inherit: true });
  await mustRun("apt-get", args, { env, inherit: true });
}

export type Accel = "kvm" | "tcg";

/** KVM when the device is usable, else TCG; SCOPE_SYSTEM_ACCEL=tcg forces TCG to reproduce CI without KVM. */
export function detectAccel(): Accel {
  if (process.env.SCOPE_SYSTEM_ACCEL === "tcg") return "tcg";
  try {
    // Opening proves access rights too; existence alone does not (containers may expose a dead node).
    closeSync(openSync("/dev/kvm", "r+"));
    return "kvm";
  } catch {
    return "tcg";
  }
}

export function log(msg: string): void {
  process.stderr.write(`[system] ${msg}\n`);
}

export function formatMs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
