import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { RegistryClient } from "../../client/registry-client.js";
import { ScopeError } from "../../core/errors.js";
import { askDaemon, backendFor, resolveEdge, stateDirFor } from "../../daemon/edge.js";
import { loadIdentity } from "../../daemon/files.js";
import { createLogger } from "../../log.js";
import type { Command } from "../command.js";
import { trustOf } from "../../client/tls.js";
import { CHECKS } from "../flags.js";

export const command: Command = {
  name: "leave",
  summary: "Leave a network: tell the registry, remove the interface, delete this host's keys and config",
  usage: "leave [--network NET] [--keep-files]",
  help: [
    "A left peer is gone for good: its keys are deleted so nothing secret stays behind.",
    "--keep-files keeps config and keys (the registry membership and the interface still go).",
  ].join("\n"),
  options: {
    network: { type: "string", short: "n" },
    config: { type: "string" },
    "keep-files": { type: "boolean" },
  },
  checks: { network: CHECKS.network, config: CHECKS.file },

  async run(args, io) {
    const { path, config } = await resolveEdge(args.values);
    const net = config.network.name;
    let viaDaemon = true;
    try {
      await askDaemon(config, { cmd: "leave" });
    } catch (e) {
      if (!(e instanceof ScopeError && e.code === "unavailable")) throw e;
      viaDaemon = false;
    }
    if (!viaDaemon) {
      // No daemon: do its part here.
      const identity = await loadIdentity(config.identity.key_file);
      await new RegistryClient({ url: config.registry.url, network: net, identity, tls: trustOf(config) })
        .leave()
        .catch((e: Error) => {
          // Already gone (removed by an admin, or an earlier leave): nothing left to undo there.
          const gone = e instanceof ScopeError && ["not_found", "forbidden", "unauthorized"].includes(e.code);
          if (!gone) throw e;
        });
      const backend = await backendFor(config, createLogger(`edge/${net}`));
      await backend.close({ remove: true });
    }
    if (existsSync("/run/systemd/system"))
      await new Promise((r) => execFile("systemctl", ["disable", `scope@${net}`], () => r(undefined)));
    if (!args.values["keep-files"]) {
      await rm(path, { force: true });
      await rm(stateDirFor(config), { recursive: true, force: true });
    }
    io.stdout.write(
      `left ${net}${args.values["keep-files"] ? "" : `; removed ${path} and ${stateDirFor(config)}`}\n`,
    );
  },
};
