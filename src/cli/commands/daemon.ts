import { setLogLevel } from "../../log.js";
import { buildDaemon, resolveEdge } from "../../daemon/edge.js";
import type { Command } from "../command.js";

export const command: Command = {
  name: "daemon",
  summary: "Run the edge daemon for one network in the foreground (what scope@NET.service runs)",
  usage: "daemon --config /etc/scope/NET.conf | --network NET",
  help: [
    "Joins the mesh described by the config (written by 'scope join'), keeps it",
    "up, and serves 'scope status/ping/netcheck/leave' on /run/scope/NET.sock.",
    "SIGTERM stops the daemon but leaves the tunnel up, so a restart drops no packet.",
  ].join("\n"),
  options: { config: { type: "string", short: "c" }, network: { type: "string", short: "n" } },
  async run(args) {
    const { config } = await resolveEdge(args.values);
    if (args.values["log-level"] === undefined) setLogLevel(config.daemon.log_level);
    const daemon = await buildDaemon(config);
    const stop = (): void => void daemon.shutdown(0, { remove: false });
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    await daemon.start();
    return daemon.done;
  },
};
