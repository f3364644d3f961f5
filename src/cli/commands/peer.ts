import { ScopeError } from "../../core/errors.js";
import { JSON_OPTION, output, table, type Command } from "../command.js";
import { CHECKS } from "../flags.js";
import { ADMIN_CHECKS, ADMIN_HELP, ADMIN_OPTIONS, adminClient } from "./admin-target.js";

export const list: Command = {
  name: "peer list",
  summary: "List the peers of a network",
  usage: "peer list NETWORK [--json]",
  help: ADMIN_HELP,
  options: { ...ADMIN_OPTIONS, ...JSON_OPTION },
  checks: ADMIN_CHECKS,
  positionals: { min: 1, max: 1, names: ["NETWORK"], checks: [CHECKS.network] },
  async run(args, io) {
    const peers = await adminClient(args, io).listPeers(args.positionals[0] ?? "");
    output(io, args, peers, (ps) =>
      table(
        ["ID", "NAME", "ADDRESS", "ROLE", "NAT", "UPDATED"],
        ps.map((p) => [p.id, p.name, p.address, p.role, p.nat.mapping, new Date(p.updatedAt).toISOString()]),
      ),
    );
  },
};

export const remove: Command = {
  name: "peer remove",
  summary: "Remove a peer from a network (by id or name)",
  usage: "peer remove NETWORK PEER",
  help: ADMIN_HELP,
  options: ADMIN_OPTIONS,
  checks: ADMIN_CHECKS,
  positionals: { min: 2, max: 2, names: ["NETWORK", "PEER"], checks: [CHECKS.network] },
  async run(args, io) {
    const [network = "", which = ""] = args.positionals;
    const admin = adminClient(args, io);
    const peers = await admin.listPeers(network);
    const peer = peers.find((p) => p.id === which) ?? peers.find((p) => p.name === which);
    if (!peer) throw new ScopeError("not_found", `no peer ${which} in ${network}`);
    await admin.removePeer(network, peer.id);
    io.stdout.write(`removed ${peer.name} (${peer.id}, ${peer.address}) from ${network}\n`);
  },
};
