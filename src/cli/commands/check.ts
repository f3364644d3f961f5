import { loadAnyConfig } from "../../config/load.js";
import { ScopeError } from "../../core/errors.js";
import type { Command } from "../command.js";
import { CHECKS } from "../flags.js";

export const command: Command = {
  name: "check",
  summary: "Validate a config file (registry.conf or NET.conf) and exit",
  usage: "check --config FILE",
  help: "Exits 0 when FILE is valid; otherwise prints FILE:LINE: problem and exits 2.",
  options: { config: { type: "string", short: "c" } },
  checks: { config: CHECKS.file },
  async run(args, io) {
    const file = args.values.config;
    if (typeof file !== "string") throw new ScopeError("usage", "missing --config FILE");
    const { kind } = loadAnyConfig(file);
    io.stdout.write(`${file}: ok (${kind} config)\n`);
  },
};
