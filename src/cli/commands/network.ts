import type { Network } from "../../core/protocol.js";
import { JSON_OPTION, output, table, type Command } from "../command.js";
import { CHECKS } from "../flags.js";
import { ADMIN_CHECKS, ADMIN_HELP, ADMIN_OPTIONS, adminClient } from "./admin-target.js";

export const create: Command = {
  name: "network create",
  summary: "Create a network on the registry",
  usage: "network create NAME --cidr 10.88.0.0/16 [--cidr6 fd..::/64] [--topology mesh|tree]",
  help: [
    "  --cidr CIDR       IPv4 range for tunnel addresses (/8 to /30); x.x.x.1 stays reserved",
    "  --cidr6 CIDR      optional IPv6 ULA prefix (/64 or shorter)",
    "  --topology T      mesh (default: every pair tries direct, hubs relay the rest) or tree",
    "                    (hubs meshed, each edge on one hub with a standby; docs/hubs.md)",
    ADMIN_HELP,
  ].join("\n"),
  options: {
    ...ADMIN_OPTIONS,
    ...JSON_OPTION,
    cidr: { type: "string" },
    cidr6: { type: "string" },
    topology: { type: "string" },
  },
  checks: { ...ADMIN_CHECKS, cidr: CHECKS.cidr, cidr6: CHECKS.cidr6, topology: CHECKS.topology },
  positionals: { min: 1, max: 1, names: ["NAME"], checks: [CHECKS.network] },
  async run(args, io) {
    const { cidr, cidr6, topology } = args.values;
    const input = {
      name: args.positionals[0] ?? "",
      cidr: String(cidr ?? ""),
      ...(typeof cidr6 === "string" ? { cidr6 } : {}),
      ...(typeof topology === "string" ? { topology: topology as Network["topology"] } : {}),
    };
    const network = await adminClient(args, io).createNetwork(input);
    output(
      io,
      args,
      network,
      (n) => `network ${n.name} created: ${n.cidr}${n.cidr6 ? ` ${n.cidr6}` : ""}, ${n.topology}\n`,
    );
  },
};

export const list: Command = {
  name: "network list",
  summary: "List the registry's networks",
  usage: "network list [--json]",
  help: ADMIN_HELP,
  options: { ...ADMIN_OPTIONS, ...JSON_OPTION },
  checks: ADMIN_CHECKS,
  async run(args, io) {
    const networks = await adminClient(args, io).listNetworks();
    output(io, args, networks, (ns) =>
      table(
        ["NAME", "CIDR", "CIDR6", "TOPOLOGY", "CREATED"],
        ns.map((n) => [n.name, n.cidr, n.cidr6, n.topology, new Date(n.createdAt).toISOString()]),
      ),
    );
  },
};
