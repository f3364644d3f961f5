/**
 * The exec seam (tailscale's osrouter commandRunner). Everything the wg
 * backend runs goes through CommandRunner, so unit tests record commands as
 * text and the lab runs the same code inside a network namespace.
 *
 * Contract: args are public. A secret goes in `stdin` (read by the tool as
 * /dev/stdin), never in args: args show up in /proc/PID/cmdline for every
 * local user.
 */
import { spawn } from "node:child_process";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandRunner {
  /** Run to completion. Never rejects for a non-zero exit: callers decide what a code means. */
  run(cmd: string, args: readonly string[], opts?: { stdin?: string }): Promise<RunResult>;
  /**
   * Start a long-lived process in its own session, not waited for, so it
   * survives the caller (a daemon crash must not take the tunnel down).
   * Resolves with its pid once spawned.
   */
  spawnDetached(
    cmd: string,
    args: readonly string[],
    opts?: { env?: Record<string, string> },
  ): Promise<number>;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(`${command}: exit ${result.code}: ${result.stderr.trim().split("\n")[0] ?? ""}`);
    this.name = "CommandError";
  }
}

/** Run and throw CommandError on a non-zero exit. */
export async function runChecked(
  runner: CommandRunner,
  cmd: string,
  args: readonly string[],
  opts?: { stdin?: string },
): Promise<RunResult> {
  const r = await runner.run(cmd, args, opts);
  if (r.code !== 0) throw new CommandError([cmd, ...args].join(" "), r);
  return r;
}

export interface ExecRunnerOptions {
  /** Run everything inside this network namespace (`ip netns exec NS ...`); used by the lab. */
  netns?: string;
}

/** The real runner on node:child_process. */
export function execRunner(options: ExecRunnerOptions = {}): CommandRunner {
  const wrap = (cmd: string, args: readonly string[]): [string, string[]] =>
    options.netns ? ["ip", ["netns", "exec", options.netns, cmd, ...args]] : [cmd, [...args]];
  return {
    run: (cmd, args, opts) =>
      new Promise((resolve) => {
        // Node's stdio "pipes" are socketpairs, and open("/dev/stdin") on a
        // socket fails with ENXIO, which is how wg(8) reads a key file. `cat`
        // moves the secret into a real pipe; argv stays free of it.
        const [file, argv] =
          opts?.stdin === undefined ? wrap(cmd, args) : wrap("sh", ["-c", 'cat | "$@"', "sh", cmd, ...args]);
        const child = spawn(file, argv, { stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        // A tool that exits before reading stdin makes the write fail with EPIPE; its exit code tells the story.
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts?.stdin ?? "");
        child.on("error", (err) => resolve({ code: 127, stdout, stderr: stderr + String(err.message) }));
        child.on("close", (code) => resolve({ code: code ?? 128, stdout, stderr }));
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
