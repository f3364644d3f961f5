/**
 * A fake host for the wg backend, in the spirit of tailscale's fakeOS: it
 * implements CommandRunner, Host and UAPI transports over one in-memory
 * model of links and WireGuard devices, and records every effect as a line
 * of text so tests compare a scenario with expected text.
 *
 * The WireGuard devices are src/wireguard's FakeWireGuard (UAPI and wg(8)
 * as wireguard-go and wireguard-tools answer them); this file adds what is
 * the wg backend's own: ip(8) links, kernel module detection, spawning
 * wireguard-go, pid files. It fails loudly on anything it does not know.
 */
import type { Host } from "./host.js";
import { canonicalAddress } from "../../src/core/ip.js";
import type { CommandRunner, DaemonSpawner, RunResult } from "../../src/exec.js";
import { FakeWireGuard } from "../../src/wireguard/fakes.js";
import { UapiUnavailableError, type UapiTransport } from "../../src/wireguard/uapi.js";

interface FakeLink {
  up: boolean;
  mtu: number;
  addresses: string[];
}

const ok = (stdout = ""): RunResult => ({ code: 0, stdout, stderr: "" });
const err = (stderr: string, code = 1): RunResult => ({ code, stdout: "", stderr });

export class FakeWgHost implements CommandRunner, DaemonSpawner, Host {
  /** Every effect, one entry per command or UAPI request, in order. */
  readonly log: string[] = [];
  readonly links = new Map<string, FakeLink>();
  /** The WireGuard side: devices answering UAPI and wg(8) (src/wireguard/fakes.ts). */
  readonly wireguard = new FakeWireGuard();
  readonly devices = this.wireguard.devices;
  readonly files = new Map<string, string>();
  /** Every argv the runner saw, to assert that no secret ever was on one. */
  readonly argvs: string[][] = [];
  kernelModule = false;

  /** Forget the log (e.g. after the setup steps of a scenario). */
  take(): string {
    const out = this.log.join("\n");
    this.log.length = 0;
    return out;
  }

  /** WireGuard learned a new endpoint by itself (roaming). */
  roam(iface: string, publicKey: string, endpoint: string): void {
    this.wireguard.roam(iface, publicKey, endpoint);
  }

  /** A handshake with the peer completed at `atSec` (Unix seconds). */
  handshake(iface: string, publicKey: string, atSec: number): void {
    this.wireguard.handshake(iface, publicKey, atSec);
  }

  // --- Host -----------------------------------------------------------------

  exists = async (path: string): Promise<boolean> => {
    if (path === "/sys/module/wireguard") return this.kernelModule;
    const sock = /^\/var\/run\/wireguard\/(.+)\.sock$/.exec(path);
    return sock ? this.devices.has(sock[1]!) : this.files.has(path);
  };
  readText = async (path: string): Promise<string | undefined> => this.files.get(path);
  writeText = async (path: string, text: string): Promise<void> => {
    this.log.push(`write ${path}`);
    this.files.set(path, text);
  };
  remove = async (path: string): Promise<void> => {
    if (this.files.delete(path)) this.log.push(`rm ${path}`);
  };
  kill = (pid: number, signal: NodeJS.Signals): boolean => {
    this.log.push(`kill -${signal} ${pid}`);
    return true;
  };
  sleep = async (): Promise<void> => undefined;

  // --- CommandRunner ----------------------------------------------------------

  run = async (cmd: string, args: readonly string[], opts?: { stdin?: string }): Promise<RunResult> => {
    this.argvs.push([cmd, ...args]);
    const line = [cmd, ...args].join(" ");
    const quiet = args[0] === "--version" || cmd === "modprobe";
    if (!quiet) this.log.push(opts?.stdin === undefined ? line : `${line} <stdin>`);
    if (cmd === "ip") return this.ip([...args]);
    if (cmd === "wg") return this.wireguard.wg([...args], opts?.stdin);
    if (cmd === "wireguard-go" && args[0] === "--version") return ok("wireguard-go v0.0.20220316\n");
    if (cmd === "modprobe") return err("modprobe: FATAL: Module wireguard not found");
    throw new Error(`FakeWgHost: unexpected command ${line}`);
  };

  spawnDetached = async (cmd: string, args: readonly string[]): Promise<number> => {
    this.argvs.push([cmd, ...args]);
    this.log.push(`spawn ${[cmd, ...args].join(" ")}`);
    if (cmd !== "wireguard-go" || args[0] !== "-f") throw new Error("FakeWgHost: unexpected spawn");
    this.create(args[1]!, 1420);
    return 4242;
  };

  /** A UAPI transport for a socket path, answering from the model like wireguard-go would. */
  transport = (path: string): UapiTransport => ({
    request: async (text: string): Promise<string> => {
      const iface = /([^/]+)\.sock$/.exec(path)![1]!;
      const dev = this.devices.get(iface);
      this.log.push(
        text === "get=1\n\n"
          ? `uapi ${iface} get=1${dev ? "" : " (no socket)"}`
          : `uapi ${iface} ${text.trimEnd()}`,
      );
      const reply = this.wireguard.uapi(iface, text);
      if (reply === undefined) throw new UapiUnavailableError(path);
      return reply;
    },
  });

  private create(iface: string, mtu: number): void {
    this.links.set(iface, { up: false, mtu, addresses: [] });
    this.wireguard.create(iface);
  }

  private ip(args: string[]): RunResult {
    const dev = args[args.indexOf("dev") + 1]!;
    const link = this.links.get(dev);
    const w = args.join(" ");
    if (w === `link add dev ${dev} type wireguard`) {
      if (!this.kernelModule) return err("Error: Unknown device type.", 2);
      this.create(dev, 1420);
      return ok();
    }
    if (!link) return err(`Device "${dev}" does not exist.`);
    if (w === `-j address show dev ${dev}`) {
      const addrInfo = link.addresses.map((a) => {
        const [local, prefixlen] = a.split("/");
        return {
          family: local!.includes(":") ? "inet6" : "inet",
          local,
          prefixlen: Number(prefixlen),
          scope: "global",
        };
      });
      const flags = link.up ? ["POINTOPOINT", "NOARP", "UP", "LOWER_UP"] : ["POINTOPOINT", "NOARP"];
      return ok(JSON.stringify([{ ifname: dev, flags, mtu: link.mtu, addr_info: addrInfo }]));
    }
    if (w === `link del dev ${dev}`) {
      this.links.delete(dev);
      this.wireguard.delete(dev);
      return ok();
    }
    if (w === `link set dev ${dev} up`) link.up = true;
    else if (args[0] === "link" && args[4] === "mtu") link.mtu = Number(args[5]);
    else if (args[0] === "address" && args[1] === "add") link.addresses.push(canonicalAddress(args[2]!));
    else if (args[0] === "address" && args[1] === "del")
      link.addresses = link.addresses.filter((a) => a !== args[2]);
    else throw new Error(`FakeWgHost: unexpected ip ${w}`);
    return ok();
  }
}
