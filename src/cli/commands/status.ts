import { askDaemon, resolveEdge } from "../../daemon/edge.js";
import type { Status } from "../../daemon/runtime.js";
import { JSON_OPTION, output, table, type Command } from "../command.js";
import { CHECKS } from "../flags.js";

export const command: Command = {
  name: "status",
  summary:
    "Show every peer: path (direct/hub/pending/none), endpoint, latency, last handshake, PSK epoch, and why not direct",
  usage: "status [--network NET] [--json]",
  options: {
    network: { type: "string", short: "n" },
    config: { type: "string", short: "c" },
    ...JSON_OPTION,
  },
  checks: { network: CHECKS.network, config: CHECKS.file },

  async run(args, io) {
    const { config } = await resolveEdge(args.values);
    const status = (await askDaemon(config, { cmd: "status" })).status as Status;
    output(io, args, status, render);
  },
};

const ago = (ms: number | null): string | null =>
  ms === null ? null : `${Math.max(0, Math.round((Date.now() - ms) / 1000))}s ago`;

function render(s: Status): string {
  const head = s.self
    ? `${s.network}: ${s.self.name}${s.self.role === "hub" ? " (hub)" : ""} ${s.self.address} port ${s.self.listenPort}, NAT ${s.self.nat.mapping}${s.self.nat.ipv6 ? ", IPv6" : ""}, backend ${s.backend}, registry ${s.registry}${s.admin === "active" ? "" : `, ${s.admin}`}\n`
    : `${s.network ?? "?"}: not joined yet\n`;
  const relays = s.self?.relaysFor;
  const relayLine = relays
    ? `relays for: ${relays.length > 0 ? relays.join(", ") : "no edge yet"}\n`
    : s.self?.hub !== undefined
      ? `hub: ${s.self.hub ?? "none"}, standby: ${s.self.standby ?? "none"}\n`
      : "";
  if (s.peers.length === 0) return head + relayLine + "no peers\n";
  const path = (p: Status["peers"][number]): string => {
    const shown = p.hub !== null ? `hub ${p.hub}` : p.path;
    return p.settled || p.path === "direct" ? shown : `${shown}…`;
  };
  return (
    head +
    relayLine +
    table(
      ["PEER", "ADDRESS", "PATH", "ENDPOINT", "LATENCY", "HANDSHAKE", "PSK EPOCH", "REASON"],
      s.peers.map((p) => [
        p.name,
        p.address,
        path(p),
        p.endpoint,
        p.latencyMs === null ? null : `${p.latencyMs}ms`,
        ago(p.lastHandshakeMs),
        p.psk ? `${p.psk.epoch} (${ago(p.psk.since)})` : null,
        p.reason,
      ]),
    )
  );
}
