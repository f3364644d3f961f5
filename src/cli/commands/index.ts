/**
 * Every `scope` subcommand, in the order `scope --help` lists them.
 * A command lives in its own module and is registered here.
 */
import type { Command } from "../command.js";
import { command as check } from "./check.js";

export const COMMANDS: Command[] = [check];
