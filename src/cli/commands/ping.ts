import { ScopeError } from "../../core/errors.js";
import { askDaemon, resolveEdge } from "../../daemon/edge.js";
import { JSON_OPTION, output, type Command } from "../command.js";
import { CHECKS } from "../flags.js";

interface PingAnswer {
  peer: string;
  address: string;
  output: string;
  exitCode: number;
}

export const command: Command = {
  name: "ping",
  summary: "Ping a peer through the tunnel (by name, id or tunnel address)",
  usage: "ping PEER [--count N] [--network NET] [--json]",
  options: {
    count: { type: "string", short: "c" },
    network: { type: "string", short: "n" },
    config: { type: "string" },
    ...JSON_OPTION,
  },
  checks: { network: CHECKS.network, config: CHECKS.file, count: CHECKS.count },
  positionals: { min: 1, max: 1, names: ["PEER"] },
  async run(args, io) {
    const count = Number(args.values.count ?? 3);
    if (!Number.isInteger(count) || count < 1 || count > 100)
      throw new ScopeError("usage", "--count must be 1-100");
    const { config } = await resolveEdge(args.values);
    const peer = args.positionals[0] ?? "";
    const ping = (await askDaemon(config, { cmd: "ping", peer, count }, (count + 5) * 2_500))
      .ping as PingAnswer;
    output(io, args, ping, (p) => `PING ${p.peer} (${p.address}) through the tunnel\n${p.output}`);
    return ping.exitCode === 0 ? 0 : 1;
  },
};
