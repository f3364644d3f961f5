/**
 * The exec seam (tailscale's osrouter commandRunner), shared by every
 * backend and by networkd/. Everything Scope runs goes through a
 * CommandRunner, so unit tests record commands as text (plugins/wg/fakes.ts,
 * networkd/testing.ts) and the lab runs the same code inside a namespace.
 *
 * Contract: args are public. A secret goes in `stdin`, never in args: args
 * show up in /proc/PID/cmdline for every local user.
 */
import { spawn } from "node:child_process";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the child's stdin, then closed: the place for secrets. */
  stdin?: string;
  timeoutMs?: number;
}

export interface CommandRunner {
  /**
   * Runs cmd with args, no shell, to completion. Never rejects: a non-zero
   * exit is the caller's to judge, and a program that cannot be started
   * answers 127 as a shell would.
   */
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/** Optional ability of a runner: long-lived processes (wireguard-go). */
export interface DaemonSpawner {
  /**
   * Starts cmd in its own session, not waited for, so it survives the
   * caller (a daemon crash must not take the tunnel down). Resolves with
   * its pid once spawned.
   */
  spawnDetached(
    cmd: string,
    args: readonly string[],
    options?: { env?: Record<string, string> },
  ): Promise<number>;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(
      `${command}: exit ${result.code}: ${(result.stderr.trim() || result.stdout.trim()).split("\n")[0] ?? ""}`,
    );
    this.name = "CommandError";
  }
}

/** Runs and throws CommandError on a non-zero exit. */
export async function runChecked(
  runner: CommandRunner,
  cmd: string,
  args: readonly string[],
  options?: RunOptions,
): Promise<RunResult> {
  const r = await runner.run(cmd, args, options);
  if (r.code !== 0) throw new CommandError([cmd, ...args].join(" "), r);
  return r;
}

export interface ExecRunnerOptions {
  /** Run everything inside this network namespace (`ip netns exec NS ...`); used by the lab. */
  netns?: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
// Stable, parseable output whatever the daemon's locale; no pager, no colours.
const STABLE_ENV = { LC_ALL: "C", SYSTEMD_PAGER: "", SYSTEMD_COLORS: "0" };

/** The real runner on node:child_process. */
export function execRunner(options: ExecRunnerOptions = {}): CommandRunner & DaemonSpawner {
  const wrap = (cmd: string, args: readonly string[]): [string, string[]] =>
    options.netns ? ["ip", ["netns", "exec", options.netns, cmd, ...args]] : [cmd, [...args]];
  return {
    run: (cmd, args, opts) =>
      new Promise((resolve) => {
        // Node's stdio "pipes" are socketpairs, and open("/dev/stdin") on a
        // socket fails with ENXIO, which is how wg(8) reads a key. `cat`
        // moves the secret into a real pipe; argv stays free of it.
        const [file, argv] =
          opts?.stdin === undefined ? wrap(cmd, args) : wrap("sh", ["-c", 'cat | "$@"', "sh", cmd, ...args]);
        const child = spawn(file, argv, {
          stdio: ["pipe", "pipe", "pipe"],
          env: { ...process.env, ...STABLE_ENV },
        });
        // Our own deadline, not spawn's `timeout`: Node leaves that timer
        // running when the command does not exist (ENOENT), which kept a
        // finished `scope join` alive for 30 s (no modprobe on the host).
        const deadline = setTimeout(() => child.kill("SIGKILL"), opts?.timeoutMs ?? DEFAULT_TIMEOUT_MS);
        const done = (r: RunResult): void => {
          clearTimeout(deadline);
          resolve(r);
        };
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        // A tool that exits before reading stdin makes the write fail with EPIPE; its exit code tells the story.
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts?.stdin ?? "");
        child.on("error", (err) => done({ code: 127, stdout, stderr: stderr + String(err.message) }));
        child.on("close", (code, signal) => done({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
      }),
    spawnDetached: (cmd, args, opts) =>
      new Promise((resolve, reject) => {
        const [file, argv] = wrap(cmd, args);
        const child = spawn(file, argv, {
          detached: true,
          stdio: "ignore",
          env: { ...process.env, ...opts?.env },
        });
        child.on("error", reject);
        child.on("spawn", () => {
          child.unref();
          resolve(child.pid!);
        });
      }),
  };
}
