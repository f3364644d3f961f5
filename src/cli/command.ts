/**
 * The shape of a `scope` subcommand. main.ts parses argv with node:util
 * parseArgs against `options`, handles --help and errors in one place, and
 * calls run(). A command returns its exit code (0 if omitted) or throws a
 * ScopeError, whose code decides the exit status (src/core/errors.ts).
 */
import type { ParseArgsConfig } from "node:util";
import type { ValueCheck } from "./flags.js";

export type OptionSpecs = NonNullable<ParseArgsConfig["options"]>;

export interface CommandIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export interface Command {
  /** Words after `scope`, e.g. "network create". */
  name: string;
  /** One line for `scope --help`. */
  summary: string;
  /** Synopsis without the leading "scope ", e.g. "network create NAME --cidr CIDR [--topology mesh|tree]". */
  usage: string;
  /** Longer help: what it does, option descriptions. */
  help?: string;
  options?: OptionSpecs;
  /** The rule of each string option's value (src/cli/flags.ts), checked before run(). */
  checks?: Record<string, ValueCheck>;
  /** Options refused outright, with the hint to print (e.g. a secret that would sit on argv). */
  refused?: Record<string, string>;
  /** Allowed number of positional arguments. */
  positionals?: { min: number; max: number; names?: string[]; checks?: (ValueCheck | undefined)[] };
  run(args: ParsedArgs, io: CommandIO): Promise<number | void>;
}

/** Writes data as JSON when --json was given, else as the text render() makes of it. */
export function output<T>(io: CommandIO, args: ParsedArgs, data: T, render: (d: T) => string): void {
  io.stdout.write(args.values.json ? JSON.stringify(data, null, 2) + "\n" : render(data));
}

/** Left-aligned columns, for tables in text output. */
export function table(header: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return (
    cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ")).join("\n") +
    "\n"
  );
}

export const JSON_OPTION: OptionSpecs = { json: { type: "boolean" } };
