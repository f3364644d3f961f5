import { ScopeError } from "../../core/errors.js";
import type { PathRecord } from "../../core/protocol.js";
import { JSON_OPTION, output, table, type Command } from "../command.js";
import { CHECKS } from "../flags.js";
import { ADMIN_CHECKS, ADMIN_HELP, ADMIN_OPTIONS, adminClient } from "./admin-target.js";

export const list: Command = {
  name: "peer list",
  summary: "List the peers of a network",
  usage: "peer list NETWORK [--json]",
  help: [
    "PATHS counts the peers this one reaches directly / via a hub / not (yet), as its",
    "daemon last reported; --json gives each peer's reports in full under `paths`",
    "(path, hub, family, latencyMs, handshakeAgeS, pskEpoch, reason, reportedAt).",
    ADMIN_HELP,
  ].join("\n"),
  options: { ...ADMIN_OPTIONS, ...JSON_OPTION },
  checks: ADMIN_CHECKS,
  positionals: { min: 1, max: 1, names: ["NETWORK"], checks: [CHECKS.network] },
  async run(args, io) {
    const admin = adminClient(args, io);
    const network = args.positionals[0] ?? "";
    const [peers, paths] = await Promise.all([admin.listPeers(network), admin.listPaths(network)]);
    const byFrom = new Map<string, Omit<PathRecord, "from">[]>();
    for (const { from, ...view } of paths) byFrom.set(from, [...(byFrom.get(from) ?? []), view]);
    const withPaths = peers.map((p) => ({ ...p, paths: byFrom.get(p.id) ?? [] }));
    const count = (ps: { path: string }[], k: string) => ps.filter((x) => x.path === k).length;
    output(io, args, withPaths, (ps) =>
      table(
        ["ID", "NAME", "ADDRESS", "ROLE", "NAT", "PATHS d/h/n", "UPDATED"],
        ps.map((p) => [
          p.id,
          p.name,
          p.address,
          p.role,
          p.nat.mapping,
          `${count(p.paths, "direct")}/${count(p.paths, "hub")}/${p.paths.length - count(p.paths, "direct") - count(p.paths, "hub")}`,
          new Date(p.updatedAt).toISOString(),
        ]),
      ),
    );
  },
};

export const set: Command = {
  name: "peer set",
  summary: "Set what the admin decides about a peer: its role (by id or name)",
  usage: "peer set NETWORK PEER --role edge|hub",
  help: [
    "  --role hub        the peer relays for edges that cannot reach each other directly",
    "                    (it should have a fixed public endpoint: scope join --endpoint)",
    "  --role edge       an ordinary member again; nobody routes through it",
    "A member's own claim about its role is ignored: only this and hub tokens make hubs.",
    ADMIN_HELP,
  ].join("\n"),
  options: { ...ADMIN_OPTIONS, ...JSON_OPTION, role: { type: "string" } },
  checks: { ...ADMIN_CHECKS, role: CHECKS.role },
  positionals: { min: 2, max: 2, names: ["NETWORK", "PEER"], checks: [CHECKS.network] },
  async run(args, io) {
    const [network = "", which = ""] = args.positionals;
    const role = args.values.role;
    if (role !== "edge" && role !== "hub") throw new ScopeError("usage", "--role: expected edge or hub");
    const admin = adminClient(args, io);
    const peer = await findPeer(admin, network, which);
    const updated = await admin.setPeer(network, peer.id, { role });
    output(io, args, updated, (p) => `${p.name} (${p.id}) is now ${p.role} in ${network}\n`);
  },
};

async function findPeer(admin: ReturnType<typeof adminClient>, network: string, which: string) {
  const peers = await admin.listPeers(network);
  const peer = peers.find((p) => p.id === which) ?? peers.find((p) => p.name === which);
  if (!peer) throw new ScopeError("not_found", `no peer ${which} in ${network}`);
  return peer;
}

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
    const peer = await findPeer(admin, network, which);
    await admin.removePeer(network, peer.id);
    io.stdout.write(`removed ${peer.name} (${peer.id}, ${peer.address}) from ${network}\n`);
  },
};
