// wireguard-go interfaces inside lab hosts. The kernel here has no WireGuard
// module, so each interface is a wireguard-go process in the host's namespace
// with its UAPI socket at /var/run/wireguard/IFACE.sock. That directory is
// shared by all namespaces, hence interface names carry the lab prefix and
// the host name ("sl-HOST"), which also lets cleanup.ts find them.
//
// Keys travel through files and stdin only, never argv (DESIGN: secrets).

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { WG_SOCKET_DIR } from "./cleanup.js";
import type { Lab } from "./lab.js";
import { LAB_ENV, run } from "./netns.js";
import { waitFor } from "./wait.js";
import { LAB_PREFIX } from "./world.js";

export interface WgPeer {
  readonly publicKey: string;
  /** "ip:port"; omitted to let the peer's own packets set it. */
  readonly endpoint?: string;
  readonly allowedIps: readonly string[];
  readonly persistentKeepaliveS?: number;
}

export interface WgStartOptions {
  /** Interface name; default "sl-HOST". Must start with the lab prefix and fit 15 chars. */
  readonly iface?: string;
  readonly listenPort: number;
  /** Tunnel address with prefix length, e.g. "10.99.0.1/24". */
  readonly address: string;
}

export class WgDevice {
  private log = "";

  private constructor(
    private readonly lab: Lab,
    readonly host: string,
    readonly iface: string,
    readonly publicKey: string,
    private readonly child: ChildProcess,
  ) {
    child.stdout?.on("data", (d: Buffer) => (this.log += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (this.log += d.toString()));
  }

  static async start(lab: Lab, host: string, opts: WgStartOptions): Promise<WgDevice> {
    const iface = opts.iface ?? `${LAB_PREFIX}${host}`;
    if (!iface.startsWith(LAB_PREFIX) || iface.length > 15) {
      throw new Error(`wireguard interface "${iface}" must start with "${LAB_PREFIX}" and fit 15 chars`);
    }
    const privateKey = (await run(["wg", "genkey"])).stdout.trim();
    const publicKey = (await run(["wg", "pubkey"], { input: privateKey })).stdout.trim();
    const keyFile = join(lab.dir, `${iface}.key`);
    writeFileSync(keyFile, `${privateKey}\n`, { mode: 0o600 });

    const child = lab.spawn(host, ["wireguard-go", "-f", iface], {
      stdio: ["ignore", "pipe", "pipe"],
      // wireguard-go refuses to start where it thinks a kernel module exists
      // unless told that userspace is wanted.
      env: { ...LAB_ENV, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1", LOG_LEVEL: "error" },
    });
    const dev = new WgDevice(lab, host, iface, publicKey, child);
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`wireguard-go exited: ${dev.log}`);
        return existsSync(join(WG_SOCKET_DIR, `${iface}.sock`));
      },
      { timeoutMs: 5000, what: `UAPI socket of ${iface}` },
    );
    await dev.wg("set", iface, "private-key", keyFile, "listen-port", String(opts.listenPort));
    await lab.exec(host, ["ip", "addr", "add", opts.address, "dev", iface]);
    await lab.exec(host, ["ip", "link", "set", iface, "up"]);
    return dev;
  }

  async setPeer(peer: WgPeer): Promise<void> {
    const args = ["set", this.iface, "peer", peer.publicKey, "allowed-ips", peer.allowedIps.join(",")];
    if (peer.endpoint !== undefined) args.push("endpoint", peer.endpoint);
    if (peer.persistentKeepaliveS !== undefined)
      args.push("persistent-keepalive", String(peer.persistentKeepaliveS));
    await this.wg(...args);
  }

  /** Peer public key → current endpoint ("(none)" entries left out), from `wg show IFACE endpoints`. */
  async endpoints(): Promise<Map<string, string>> {
    return this.showPairs("endpoints", (v) => (v === "(none)" ? undefined : v));
  }

  /** Peer public key → last handshake time in ms since the epoch (peers without one left out). */
  async latestHandshakes(): Promise<Map<string, number>> {
    return this.showPairs("latest-handshakes", (v) => (v === "0" ? undefined : Number(v) * 1000));
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }

  private async showPairs<T>(field: string, parse: (v: string) => T | undefined): Promise<Map<string, T>> {
    // Always name the interface: a bare `wg show` lists every lab's devices.
    const r = await this.wg("show", this.iface, field);
    const map = new Map<string, T>();
    for (const line of r.stdout.split("\n")) {
      const [key, value] = line.split("\t");
      if (key === undefined || value === undefined) continue;
      const parsed = parse(value);
      if (parsed !== undefined) map.set(key, parsed);
    }
    return map;
  }

  private wg(...args: string[]): ReturnType<typeof run> {
    return this.lab.exec(this.host, ["wg", ...args]);
  }
}
