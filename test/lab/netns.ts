// A small runner for `ip`, `nft`, `sysctl` and `ip netns exec`. Every failure
// throws a CommandError that carries the exact argv and stderr, so a broken
// lab build says which command failed and why instead of "exit code 2".

import { execFile, execFileSync } from "node:child_process";

export interface RunOptions {
  /** Run inside this network namespace (`ip netns exec NS ...`). */
  readonly ns?: string;
  /** Written to the command's stdin (used for `nft -f -` and key material). */
  readonly input?: string;
  readonly timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  readonly allowFail?: boolean;
}

export interface RunResult {
  readonly argv: readonly string[];
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandError extends Error {
  override readonly name = "CommandError";
  constructor(readonly result: RunResult) {
    super(
      `command failed (exit ${result.code}): ${result.argv.join(" ")}\n` +
        (result.stderr.trim() || result.stdout.trim() || "(no output)"),
    );
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** `ip`, `nft` and `sysctl` live in sbin, which a CI user's PATH may lack even as root. */
export const LAB_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: `${process.env["PATH"] ?? "/usr/bin:/bin"}:/usr/sbin:/sbin`,
};

/** argv prefixed with `ip netns exec NS` when a namespace is given. */
export function inNs(ns: string | undefined, argv: readonly string[]): string[] {
  return ns === undefined ? [...argv] : ["ip", "netns", "exec", ns, ...argv];
}

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = inNs(opts.ns, argv);
  const [file, ...args] = full;
  if (file === undefined) throw new Error("run: empty argv");
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxBuffer: 16 << 20, encoding: "utf8", env: LAB_ENV },
      (err, stdout, stderr) => {
        // execFile reports a timeout as a killed child with a null exit code.
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        const result: RunResult = {
          argv: full,
          code,
          stdout,
          stderr: err !== null && code === -1 ? `${stderr}\n${err.message}` : stderr,
        };
        if (code !== 0 && opts.allowFail !== true) reject(new CommandError(result));
        else resolve(result);
      },
    );
    // A command that exits without reading stdin makes the write fail with
    // EPIPE; its exit status already says what happened.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(opts.input);
  });
}

/**
 * Synchronous variant for process-exit cleanup, where no promise can settle.
 * Never throws; the caller decides whether a failure matters.
 */
export function runSync(argv: readonly string[], opts: { input?: string } = {}): RunResult {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("runSync: empty argv");
  try {
    const stdout = execFileSync(file, args, {
      input: opts.input ?? "",
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      timeout: DEFAULT_TIMEOUT_MS,
      env: LAB_ENV,
    });
    return { argv, code: 0, stdout, stderr: "" };
  } catch (e) {
    const err = e as { status?: number | null; stdout?: string; stderr?: string };
    return { argv, code: err.status ?? -1, stdout: err.stdout ?? "", stderr: err.stderr ?? String(e) };
  }
}

/** `ip` commands in one namespace (or the root namespace when ns is undefined). */
export function ip(ns: string | undefined, ...args: string[]): Promise<RunResult> {
  return run(ns === undefined ? ["ip", ...args] : ["ip", "-n", ns, ...args]);
}

/** Loads an nft script atomically (one transaction) in a namespace. */
export function nft(ns: string, script: string): Promise<RunResult> {
  return run(["nft", "-f", "-"], { ns, input: script });
}

/** Sets sysctls inside a namespace; keys use the dotted form. */
export function sysctl(ns: string, values: Readonly<Record<string, string | number>>): Promise<RunResult> {
  const pairs = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  return run(["sysctl", "-q", "-w", ...pairs], { ns });
}
