import { Duration } from "../../config/schema.js";
import { ScopeError } from "../../core/errors.js";
import { JSON_OPTION, output, type Command } from "../command.js";
import { CHECKS } from "../flags.js";
import { ADMIN_CHECKS, ADMIN_HELP, ADMIN_OPTIONS, adminClient } from "./admin-target.js";

/** --expires in seconds, with the duration syntax of the config files. */
function expiresIn(s: string): number {
  const r = Duration.safeParse(s);
  if (!r.success) throw new ScopeError("usage", `--expires: ${r.error.issues[0]?.message ?? "invalid"}`);
  return r.data;
}

export const command: Command = {
  name: "token create",
  summary: "Create a join token, or with --viewer a read-only web view token, for a network (printed once)",
  usage: "token create NETWORK [--uses N] [--expires 24h] [--role edge|hub] [--viewer]",
  help: [
    "The registry keeps only a hash: the token cannot be shown again.",
    "  --uses N          joins allowed (default 1)",
    "  --expires D       lifetime: 90s, 15m, 24h (default), 7d",
    "  --role R          edge (default) or hub: a peer joining with a hub token relays",
    "                    for the others (give a hub a fixed public endpoint: scope join --endpoint)",
    "  --viewer          a read-only token for the registry's web view (https://REGISTRY/ui/)",
    "                    of this network instead of a join token: it cannot join or change",
    "                    anything; --expires applies, --uses and --role do not",
    ADMIN_HELP,
  ].join("\n"),
  options: {
    ...ADMIN_OPTIONS,
    ...JSON_OPTION,
    uses: { type: "string" },
    expires: { type: "string" },
    role: { type: "string" },
    viewer: { type: "boolean" },
  },
  checks: { ...ADMIN_CHECKS, uses: CHECKS.uses, expires: CHECKS.expires, role: CHECKS.role },
  positionals: { min: 1, max: 1, names: ["NETWORK"], checks: [CHECKS.network] },
  async run(args, io) {
    const { uses, expires, role, viewer } = args.values;
    if (viewer) {
      if (uses !== undefined || role !== undefined)
        throw new ScopeError("usage", "--viewer: a viewer token has no --uses or --role");
      const v = await adminClient(args, io).createViewerToken(args.positionals[0] ?? "", {
        ...(typeof expires === "string" ? { expiresIn: expiresIn(expires) } : {}),
      });
      output(io, args, v, (t) => `${t.token}\n`);
      if (!args.values.json)
        io.stderr.write(
          `viewer token ${v.id} for ${v.network}: read-only, expires ${new Date(v.expiresAt).toISOString()}; it is not shown again\n`,
        );
      return;
    }
    if (role !== undefined && role !== "edge" && role !== "hub")
      throw new ScopeError("usage", "--role: expected edge or hub");
    if (uses !== undefined && !/^[0-9]+$/.test(String(uses)))
      throw new ScopeError("usage", "--uses: expected a positive integer");
    const created = await adminClient(args, io).createToken(args.positionals[0] ?? "", {
      ...(uses !== undefined ? { uses: Number(uses) } : {}),
      ...(typeof expires === "string" ? { expiresIn: expiresIn(expires) } : {}),
      ...(role !== undefined ? { role } : {}),
    });
    output(io, args, created, (t) => `${t.token}\n`);
    if (!args.values.json) {
      io.stderr.write(
        `${created.role} token ${created.id} for ${created.network}: ${created.uses} use(s), expires ${new Date(created.expiresAt).toISOString()}; it is not shown again\n`,
      );
    }
  },
};
