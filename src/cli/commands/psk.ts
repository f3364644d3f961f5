import { askDaemon, resolveEdge } from "../../daemon/edge.js";
import type { Command } from "../command.js";

export const rotate: Command = {
  name: "psk rotate",
  summary: "Rotate the post-quantum pre-shared key with one peer, or every peer, now",
  usage: "psk rotate [PEER] [--network NET]",
  help: [
    "Starts a PSK rotation (ML-KEM-768 + X448, docs/security.md) without waiting for [psk] interval.",
    "PEER is a peer name or id; without it every peer rotates. Needs [psk] mode = rotate.",
    "`scope status` shows each peer's PSK epoch and age.",
  ].join("\n"),
  options: {
    network: { type: "string", short: "n" },
    config: { type: "string", short: "c" },
  },
  positionals: { min: 0, max: 1, names: ["PEER"] },
  async run(args, io) {
    const { config } = await resolveEdge(args.values);
    const peer = args.positionals[0];
    await askDaemon(config, { cmd: "pskRotate", ...(peer ? { peer } : {}) });
    io.stdout.write(`PSK rotation started with ${peer ?? "every peer"}\n`);
  },
};
