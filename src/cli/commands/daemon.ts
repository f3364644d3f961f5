import { setLogLevel } from "../../log.js";
import { buildDaemon, resolveEdge, type Handover, type PreparedBackend } from "../../daemon/edge.js";
import type { EdgeConfig } from "../../config/schema.js";
import type { Command } from "../command.js";
import { CHECKS } from "../flags.js";

// `scope join --foreground` loads this module early and makes the interface with it.
export { prepareInterface } from "../../daemon/edge.js";

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
  checks: { network: CHECKS.network, config: CHECKS.file },
  async run(args) {
    const { config } = await resolveEdge(args.values);
    return runDaemon(config, args.values["log-level"] === undefined);
  },
};

/**
 * Runs the edge daemon in this process until it stops; resolves with the
 * exit code. Shared by `scope daemon` and `scope join --foreground`, which
 * hands over to the daemon without starting a second node process.
 */
export async function runDaemon(
  config: EdgeConfig,
  configLogLevel: boolean,
  prepared?: PreparedBackend,
  handover?: Handover,
): Promise<number> {
  if (configLogLevel) setLogLevel(config.daemon.log_level);
  const daemon = await buildDaemon(config, prepared, handover);
  let stopping = false;
  // Aborting the event stream at shutdown can surface as an unhandled
  // AbortError on its socket; that one is expected, anything else is fatal.
  process.on("uncaughtException", (e: Error & { code?: string }) => {
    if (stopping && e.code === "ABORT_ERR") return;
    // One line, as everywhere in the CLI; the stack only when debugging.
    process.stderr.write(`scope daemon: fatal: ${(process.env.SCOPE_DEBUG && e.stack) || e.message}\n`);
    process.exit(1);
  });
  daemon.stopping = () => (stopping = true);
  const stop = (): void => {
    stopping = true;
    void daemon.shutdown(0, { remove: false });
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await daemon.start();
  return daemon.done;
}
