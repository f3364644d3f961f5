import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { Duration } from "../../config/schema.js";
import { ScopeError } from "../../core/errors.js";
import { generateIdentity } from "../../crypto/keys.js";
import { askDaemon, resolveEdge } from "../../daemon/edge.js";
import { DEFAULT_STATE_ROOT, identityFileText, loadIdentity, writePrivateFile } from "../../daemon/files.js";
import { PskOnly } from "../../daemon/psk-only.js";
import { execRunner } from "../../exec.js";
import { createLogger } from "../../log.js";
import type { Command } from "../command.js";
import { CHECKS } from "../flags.js";

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
  checks: { network: CHECKS.network, config: CHECKS.file },
  positionals: { min: 0, max: 1, names: ["PEER"] },
  async run(args, io) {
    const { config } = await resolveEdge(args.values);
    const peer = args.positionals[0];
    await askDaemon(config, { cmd: "pskRotate", ...(peer ? { peer } : {}) });
    io.stdout.write(`PSK rotation started with ${peer ?? "every peer"}\n`);
  },
};

export const only: Command = {
  name: "psk",
  summary: "PSK-only mode: rotate post-quantum PSKs on an existing WireGuard interface Scope does not manage",
  usage: "psk --interface IF [--port 51822] [--interval 2m] [--state-dir DIR]",
  help: [
    "Runs in the foreground (a unit: `scope psk --interface wg0` as ExecStart=) and touches only the",
    "preshared-key of each peer of IF, never endpoints, allowed IPs or keys. Both ends run it with the",
    "same --port: kex messages travel inside the tunnel, to each peer's single-address allowed IP",
    "(a /32 or /128; peers without one are skipped). The identity key is made once under --state-dir",
    "(default /var/lib/scope/psk-IF). docs/security.md has the details.",
  ].join("\n"),
  options: {
    interface: { type: "string", short: "i" },
    port: { type: "string", default: "51822" },
    interval: { type: "string", default: "2m" },
    "state-dir": { type: "string" },
  },
  checks: {
    interface: CHECKS.iface,
    port: CHECKS.listenPort,
    interval: CHECKS.pskInterval,
    "state-dir": CHECKS.path,
  },
  async run(args, io) {
    const v = args.values as Record<string, string | undefined>;
    const iface = v.interface;
    if (iface === undefined) throw new ScopeError("usage", "--interface IF is required");
    const port = Number(v.port);
    const interval = Duration.parse(v.interval);
    const stateDir = v["state-dir"] ?? `${DEFAULT_STATE_ROOT}/psk-${iface}`;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const keyFile = `${stateDir}/identity.key`;
    const identity = existsSync(keyFile)
      ? await loadIdentity(keyFile)
      : await (async () => {
          const id = generateIdentity();
          await writePrivateFile(keyFile, identityFileText(id));
          return id;
        })();
    const psk = new PskOnly({
      iface,
      port,
      intervalMs: interval * 1000,
      identity,
      runner: execRunner(),
      logger: createLogger(`psk/${iface}`),
    });
    await psk.start();
    io.stdout.write(`rotating PSKs on ${iface} (port ${port}); SIGTERM stops\n`);
    await new Promise<void>((resolve) => {
      for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
    });
    psk.stop();
  },
};
