import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { loadRegistryConfig } from "../../config/load.js";
import { ListenAddress, RegistryConfig } from "../../config/schema.js";
import { ScopeError } from "../../core/errors.js";
import { createLogger, setLogLevel } from "../../log.js";
import { postgresUrl } from "../../registry/open-store.js";
import { JSON_OPTION, output, type Command } from "../command.js";
import { CHECKS } from "../flags.js";

export const DEFAULT_REGISTRY_CONFIG = "/etc/scope/registry.conf";

export const command: Command = {
  name: "registry",
  summary: "Run the registry server (HTTP API, event stream, UDP reflector, admin socket)",
  usage: "registry [--config FILE] [--listen ADDR:PORT] [--data DIR]",
  help: [
    `Reads FILE (default ${DEFAULT_REGISTRY_CONFIG} if it exists, else built-in defaults);`,
    "--listen and --data override the file. Runs until SIGTERM or SIGINT.",
    "",
    "  -c, --config FILE      registry.conf (see docs/registry.md)",
    "      --listen ADDR:PORT HTTP listen address; UDP reflector on the same port (default [::]:8470)",
    "      --data DIR         database and registry key (default /var/lib/scope/registry)",
  ].join("\n"),
  options: { config: { type: "string", short: "c" }, listen: { type: "string" }, data: { type: "string" } },
  checks: { config: CHECKS.file, listen: CHECKS.listen, data: CHECKS.path },
  async run(args) {
    const { config: file, listen, data } = args.values;
    const path =
      typeof file === "string"
        ? file
        : existsSync(DEFAULT_REGISTRY_CONFIG)
          ? DEFAULT_REGISTRY_CONFIG
          : undefined;
    const config = path ? loadRegistryConfig(path) : RegistryConfig.parse({});
    if (typeof listen === "string") {
      const r = ListenAddress.safeParse(listen);
      if (!r.success) throw new ScopeError("usage", `--listen: ${r.error.issues[0]?.message ?? "invalid"}`);
      config.registry.listen = r.data;
    }
    if (typeof data === "string") config.registry.data = resolve(data);
    if (args.values["log-level"] === undefined) setLogLevel(config.log.level);
    // Loaded here, not at the top: koa, the router and SQLite are the bulk of
    // the CLI's start-up, and every other command (the edge daemon) needs none.
    const { runRegistry } = await import("../../registry/server.js");
    await runRegistry(config);
  },
};

export const migrate: Command = {
  name: "registry migrate",
  summary: "Copy a SQLite registry's networks, peers, tokens and events into PostgreSQL",
  usage: "registry migrate --from sqlite:PATH (--to postgres://… | --to-file FILE) [--json]",
  help: [
    "Run with the registry stopped. Peers keep their ids and addresses and events their ids, so",
    "daemons carry on against registries on the new store without re-joining. Refuses a target",
    "that already has a network of the same name. Copy the data dir's registry.key to every replica.",
    "",
    "      --from sqlite:PATH  the registry.db of the single-host registry",
    "      --to URL            postgres://USER@HOST:PORT/DB (no password on the command line)",
    "      --to-file FILE      a file holding the URL, for one with a password",
  ].join("\n"),
  options: {
    from: { type: "string" },
    to: { type: "string" },
    "to-file": { type: "string" },
    ...JSON_OPTION,
  },
  checks: { from: CHECKS.sqliteSource, to: CHECKS.postgresUrl, "to-file": CHECKS.file },
  async run(args, io) {
    const { from, to } = args.values;
    const toFile = args.values["to-file"];
    if (typeof from !== "string") throw new ScopeError("usage", "--from sqlite:PATH is required");
    if ((typeof to === "string") === (typeof toFile === "string"))
      throw new ScopeError("usage", "give one of --to URL or --to-file FILE");
    const url = postgresUrl({
      kind: "postgres",
      ...(typeof to === "string" ? { url: to } : { url_file: resolve(String(toFile)) }),
    });
    const { migrateSqliteToPg } = await import("../../registry/migrate.js");
    const counts = await migrateSqliteToPg(
      resolve(from.slice("sqlite:".length)),
      url,
      createLogger("migrate"),
      Date.now(),
    );
    output(
      io,
      args,
      counts,
      (c) =>
        `migrated ${c.networks} networks, ${c.peers} peers, ${c.tokens} tokens, ${c.events} events, ${c.viewerTokens} viewer tokens, ${c.paths} path reports\n`,
    );
  },
};
