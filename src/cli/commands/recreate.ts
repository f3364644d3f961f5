import { canRecreate } from "../../core/backend.js";
import { ScopeError } from "../../core/errors.js";
import { askDaemon, backendFor, resolveEdge } from "../../daemon/edge.js";
import { createLogger } from "../../log.js";
import type { Command } from "../command.js";
import { CHECKS } from "../flags.js";

export const command: Command = {
  name: "recreate",
  summary: "Bring back the backend's profile after it was deleted by hand (NetworkManager's \"Scope NET\")",
  usage: "recreate [--network NET]",
  help: [
    "Scope never recreates what a user deleted outside it (nmcli, GNOME Settings): the",
    "daemon logs the deletion, pauses, and 'scope status' says so. This command is the",
    "request: a running daemon makes the profile again at once and resumes; without a",
    "daemon, the next start makes it.",
  ].join("\n"),
  options: { network: { type: "string", short: "n" }, config: { type: "string", short: "c" } },
  checks: { network: CHECKS.network, config: CHECKS.file },
  async run(args, io) {
    const { config } = await resolveEdge(args.values);
    const net = config.network.name;
    try {
      await askDaemon(config, { cmd: "recreate" });
      io.stdout.write(`${net}: profile recreated by the running daemon\n`);
      return;
    } catch (e) {
      if (!(e instanceof ScopeError && e.code === "unavailable")) throw e;
    }
    // No daemon: forget the deleted profile here, so the next start makes a new one.
    const backend = await backendFor(config, createLogger(`edge/${net}`));
    try {
      if (!canRecreate(backend))
        throw new ScopeError("usage", `the ${backend.name} backend has nothing to recreate`);
      await backend.allowRecreate();
    } finally {
      await backend.close().catch(() => undefined);
    }
    io.stdout.write(`${net}: no daemon running; the next start of scope@${net} makes the profile again\n`);
  },
};
