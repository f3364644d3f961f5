import type { NetcheckReport } from "../../core/netcheck.js";
import { formatEndpoint } from "../../core/ip.js";
import { askDaemon, resolveEdge } from "../../daemon/edge.js";
import { JSON_OPTION, output, type Command } from "../command.js";
import { CHECKS } from "../flags.js";

export const command: Command = {
  name: "netcheck",
  summary:
    "Report this host's NAT mapping behaviour and IPv6 reachability, via the registry's reflector ports",
  usage: "netcheck [--network NET] [--json]",
  help: "Asks the running daemon, which owns the probe socket (the NAT mapping that matters is that socket's).",
  options: { network: { type: "string", short: "n" }, config: { type: "string" }, ...JSON_OPTION },
  checks: { network: CHECKS.network, config: CHECKS.file },
  async run(args, io) {
    const { config } = await resolveEdge(args.values);
    const report = (await askDaemon(config, { cmd: "netcheck" })).netcheck as NetcheckReport;
    output(io, args, report, render);
  },
};

const MAPPING_TEXT: Record<NetcheckReport["mapping"], string> = {
  none: "no NAT (public address)",
  "endpoint-independent": "endpoint-independent (open NAT: direct paths possible)",
  "endpoint-dependent": "endpoint-dependent (symmetric NAT: direct paths unlikely)",
  unknown: "unknown (not enough reflector answers)",
};

function render(r: NetcheckReport): string {
  return [
    `mapping:        ${MAPPING_TEXT[r.mapping]}`,
    `port preserved: ${r.portPreserved === null ? "-" : r.portPreserved ? "yes" : "no (port-shifting NAT)"}`,
    `IPv4 public:    ${r.ipv4 ? formatEndpoint(r.ipv4.public) : "no answer"}`,
    `IPv6:           ${r.ipv6.reachable && r.ipv6.public ? `reachable as ${r.ipv6.public.address}` : "not reachable"}`,
    ...r.latencies.map((l) => `latency:        ${l.server} ${l.rttMs}ms`),
    "",
  ].join("\n");
}
