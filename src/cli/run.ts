/**
 * The `scope` CLI, loaded by the entry main.ts: finds the subcommand, parses
 * its flags, runs it, and maps every failure to one line on stderr and an
 * exit code (2 for usage and config, 1 for runtime errors). No stack traces
 * unless SCOPE_DEBUG=1.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { isScopeError, ScopeError } from "../core/errors.js";
import { isLogLevel, setLogLevel } from "../log.js";
import type { Command, CommandIO } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { shownValue } from "./flags.js";

const GLOBAL_OPTIONS = { help: { type: "boolean", short: "h" }, "log-level": { type: "string" } } as const;

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: scope COMMAND [OPTIONS]",
    "",
    "Scope builds and keeps a WireGuard mesh among Linux hosts.",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Global options: --help, --version, --log-level error|warn|info|debug",
    "Run 'scope COMMAND --help' for a command's options.",
    "",
  ].join("\n");
}

function commandHelp(c: Command): string {
  return [`Usage: scope ${c.usage}`, "", c.summary, ...(c.help ? ["", c.help.trimEnd()] : []), ""].join("\n");
}

/** Longest command name that prefixes argv: "network create x" → "network create". */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of COMMANDS) {
    const words = c.name.split(" ");
    if (words.every((w, i) => argv[i] === w) && (!best || words.length > best.name.split(" ").length))
      best = c;
  }
  return best && { command: best, rest: argv.slice(best.name.split(" ").length) };
}

const usageError = (message: string): ScopeError => new ScopeError("usage", message);

/** Before parsing: a refused option must not be parsed (its value may be a secret to keep out of messages). */
function refuseOptions(command: Command, rest: string[]): void {
  for (const [name, hint] of Object.entries(command.refused ?? {}))
    if (rest.some((a) => a === `--${name}` || a.startsWith(`--${name}=`)))
      throw usageError(`--${name} is refused: ${hint}`);
}

/** Every value against its rule (src/cli/flags.ts): one line naming the flag, exit 2, before any I/O. */
function checkValues(
  command: Command,
  parsed: { values: Record<string, unknown>; positionals: string[] },
): void {
  for (const [name, check] of Object.entries(command.checks ?? {})) {
    const v = parsed.values[name];
    if (typeof v !== "string") continue;
    const problem = check(v);
    if (problem) throw usageError(`--${name} ${shownValue(v)}: ${problem}`);
  }
  const { names = [], checks = [] } = command.positionals ?? {};
  parsed.positionals.forEach((v, i) => {
    const problem = checks[i]?.(v);
    if (problem) throw usageError(`${names[i] ?? "argument"} ${shownValue(v)}: ${problem}`);
  });
}

export async function main(argv: string[], io: CommandIO): Promise<number> {
  try {
    if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
      io.stdout.write(topHelp());
      return argv.length === 0 ? 2 : 0;
    }
    if (argv[0] === "--version" || argv[0] === "-V") {
      io.stdout.write(`scope ${version()}\n`);
      return 0;
    }
    const found = findCommand(argv);
    if (!found) {
      const group = COMMANDS.filter((c) => c.name.startsWith(argv[0] + " "));
      if (group.length && !argv[0].startsWith("-"))
        throw usageError(
          `'${argv.slice(0, 2).join(" ")}' is not a command; try: ${group.map((c) => c.name).join(", ")}`,
        );
      throw usageError(`unknown command '${argv[0]}' (see 'scope --help')`);
    }
    const { command, rest } = found;
    refuseOptions(command, rest);
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...GLOBAL_OPTIONS, ...command.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw usageError(
        `${(e as Error).message.split("\n")[0].replace(/\. To specify a positional.*$/, "")} (see 'scope ${command.name} --help')`,
      );
    }
    if (parsed.values.help) {
      io.stdout.write(commandHelp(command));
      return 0;
    }
    const level = parsed.values["log-level"];
    if (typeof level === "string") {
      if (!isLogLevel(level)) throw usageError(`--log-level must be one of error, warn, info, debug`);
      setLogLevel(level);
    }
    const { min, max } = command.positionals ?? { min: 0, max: 0 };
    const n = parsed.positionals.length;
    if (n < min) throw usageError(`missing argument; usage: scope ${command.usage}`);
    if (n > max)
      throw usageError(`unexpected argument '${parsed.positionals[max]}'; usage: scope ${command.usage}`);
    checkValues(command, parsed);
    return (await command.run(parsed, io)) ?? 0;
  } catch (e) {
    if (isScopeError(e)) {
      io.stderr.write(`scope: ${e.oneLine()}\n`);
      return e.exitCode;
    }
    io.stderr.write(`scope: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    if (process.env.SCOPE_DEBUG) io.stderr.write(`${(e as Error)?.stack}\n`);
    return 1;
  }
}
