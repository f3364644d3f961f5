/**
 * wireguard-go's lifecycle. Started as `wireguard-go -f IFACE` in its own
 * session (DaemonSpawner.spawnDetached), so a crash or `kill -9` of the
 * daemon leaves the tunnel running; a restarted daemon finds the UAPI socket
 * alive and reuses it instead of starting a second wireguard-go (the backend
 * only creates when control.read() finds nothing).
 *
 * Deleting the TUN link makes wireguard-go exit and remove its socket
 * (verified on 0.0.20220316); a SIGTERM to the pid we recorded is the
 * fallback for a wireguard-go that lingers.
 */
import { join } from "node:path";
import type { Host } from "./host.js";
import type { Lifecycle } from "./link.js";
import type { CommandRunner, DaemonSpawner } from "../../src/exec.js";
import { UapiUnavailableError, type UapiTransport } from "../../src/wireguard/uapi.js";

/** Where wireguard-go puts its UAPI socket (ipc/uapi_linux.go: socketDirectory). */
export const UAPI_SOCKET_DIR = "/var/run/wireguard";

export const uapiSocketPath = (iface: string, dir = UAPI_SOCKET_DIR): string => join(dir, `${iface}.sock`);

/** How long wireguard-go may take to open its socket. */
const START_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 2000;
/**
 * How often to look: soon at first, then less often. wireguard-go opens its
 * socket 7-12 ms after the spawn (lab), and a look is one failed connect(2);
 * with a flat 50 ms every first start (a join's interface) waited 50 ms.
 */
const POLL_FIRST_MS = 4;
const POLL_MAX_MS = 50;

export interface WireguardGoOptions {
  iface: string;
  runner: CommandRunner & DaemonSpawner;
  transport: UapiTransport;
  host: Host;
  /** The pid file lives here (the backend's state dir). */
  stateDir: string;
  binary?: string;
}

export class WireguardGoLifecycle implements Lifecycle {
  private readonly pidFile: string;

  constructor(private readonly o: WireguardGoOptions) {
    this.pidFile = join(o.stateDir, `wireguard-go-${o.iface}.pid`);
  }

  async create(): Promise<void> {
    const pid = await this.o.runner.spawnDetached(this.o.binary ?? "wireguard-go", ["-f", this.o.iface], {
      env: { WG_PROCESS_FOREGROUND: "1" },
    });
    await this.o.host.writeText(this.pidFile, `${pid}\n`);
    if (!(await this.waitFor(true, START_TIMEOUT_MS))) {
      this.o.host.kill(pid, "SIGTERM");
      throw new Error(
        `wireguard-go for ${this.o.iface} did not open its UAPI socket within ${START_TIMEOUT_MS} ms`,
      );
    }
  }

  async destroy(): Promise<void> {
    await this.o.runner.run("ip", ["link", "del", "dev", this.o.iface]);
    if (!(await this.waitFor(false, STOP_TIMEOUT_MS))) {
      const pid = Number((await this.o.host.readText(this.pidFile))?.trim());
      const cmdline = pid > 0 ? await this.o.host.readText(`/proc/${pid}/cmdline`) : undefined;
      // Only signal the pid if it still is our wireguard-go: pids are reused.
      if (cmdline?.includes("wireguard-go") && cmdline.includes(this.o.iface))
        this.o.host.kill(pid, "SIGTERM");
      await this.waitFor(false, STOP_TIMEOUT_MS);
    }
    await this.o.host.remove(this.pidFile);
  }

  /** True once the socket's liveness equals `alive`, false on timeout. */
  private async waitFor(alive: boolean, timeoutMs: number): Promise<boolean> {
    for (let waited = 0, gap = POLL_FIRST_MS; ; waited += gap, gap = Math.min(gap * 2, POLL_MAX_MS)) {
      if ((await this.isAlive()) === alive) return true;
      if (waited >= timeoutMs) return false;
      await this.o.host.sleep(gap);
    }
  }

  private async isAlive(): Promise<boolean> {
    try {
      await this.o.transport.request("get=1\n\n");
      return true;
    } catch (err) {
      if (err instanceof UapiUnavailableError) return false;
      throw err;
    }
  }
}
