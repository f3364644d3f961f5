/**
 * A fake host for the wg backend, in the spirit of tailscale's fakeOS: it
 * implements CommandRunner, Host and UAPI transports over one in-memory
 * model of links and WireGuard devices, and records every effect as a line
 * of text so tests compare a scenario with expected text.
 *
 * The device model follows wireguard-go's set semantics (update_only,
 * remove, replace_allowed_ips, unknown key → errno=-22) closely enough that
 * a second apply sees what the first one wrote. It understands the subset
 * of ip(8) and wg(8) the backend uses and fails loudly on anything else.
 */
import type { Host } from "./host.js";
import { canonicalAddress } from "../../src/wireguard/ipnet.js";
import type { CommandRunner, DaemonSpawner, RunResult } from "../../src/exec.js";
import { keyFromHex, keyToHex, UapiUnavailableError, type UapiTransport } from "../../src/wireguard/uapi.js";

interface FakePeer {
  psk?: string;
  endpoint?: string;
  allowedIps: string[];
  keepalive: number;
  rx: number;
  tx: number;
  handshakeSec: number;
}

interface FakeDevice {
  privateKey?: string;
  listenPort?: number;
  peers: Map<string, FakePeer>;
}

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
  readonly devices = new Map<string, FakeDevice>();
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
    this.devices.get(iface)!.peers.get(publicKey)!.endpoint = endpoint;
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
    if (cmd === "wg") return this.wg([...args], opts?.stdin);
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
      if (!dev) throw new UapiUnavailableError(path);
      if (text === "get=1\n\n") return this.uapiGet(dev);
      if (!text.startsWith("set=1\n") || !text.endsWith("\n\n")) return "errno=-71\n\n";
      return `errno=${this.uapiSet(dev, text.slice(6, -2).split("\n"))}\n\n`;
    },
  });

  private create(iface: string, mtu: number): void {
    this.links.set(iface, { up: false, mtu, addresses: [] });
    this.devices.set(iface, { peers: new Map() });
  }

  private uapiGet(dev: FakeDevice): string {
    const out: string[] = [];
    if (dev.privateKey) out.push(`private_key=${keyToHex(dev.privateKey)}`);
    if (dev.listenPort) out.push(`listen_port=${dev.listenPort}`);
    for (const [pub, p] of dev.peers) {
      out.push(`public_key=${keyToHex(pub)}`, `preshared_key=${p.psk ? keyToHex(p.psk) : "0".repeat(64)}`);
      out.push("protocol_version=1");
      if (p.endpoint) out.push(`endpoint=${p.endpoint}`);
      out.push(`last_handshake_time_sec=${p.handshakeSec}`, "last_handshake_time_nsec=0");
      out.push(`tx_bytes=${p.tx}`, `rx_bytes=${p.rx}`, `persistent_keepalive_interval=${p.keepalive}`);
      out.push(...p.allowedIps.map((ip) => `allowed_ip=${ip}`));
    }
    return `${out.map((l) => `${l}\n`).join("")}errno=0\n\n`;
  }

  /** wireguard-go IpcSetOperation, reduced to what the model holds. Returns the errno. */
  private uapiSet(dev: FakeDevice, lines: string[]): number {
    let peer: FakePeer | undefined;
    let pub: string | undefined;
    for (const line of lines) {
      const [key, value] = line.split("=", 2) as [string, string];
      if (key === "public_key") {
        pub = keyFromHex(value);
        peer = dev.peers.get(pub);
        if (!peer) dev.peers.set(pub, (peer = newPeer()));
        continue;
      }
      if (!peer || !pub) {
        if (key === "private_key") dev.privateKey = keyFromHex(value);
        else if (key === "listen_port") dev.listenPort = Number(value);
        else return -22;
        continue;
      }
      switch (key) {
        case "update_only":
        case "protocol_version":
          break;
        case "remove":
          dev.peers.delete(pub);
          break;
        case "preshared_key":
          peer.psk = /^0+$/.test(value) ? undefined : keyFromHex(value);
          break;
        case "endpoint":
          peer.endpoint = value;
          break;
        case "persistent_keepalive_interval":
          peer.keepalive = Number(value);
          break;
        case "replace_allowed_ips":
          peer.allowedIps = [];
          break;
        case "allowed_ip":
          peer.allowedIps.push(value);
          break;
        default:
          return -22;
      }
    }
    return 0;
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
      this.devices.delete(dev);
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

  private wg(args: string[], stdin: string | undefined): RunResult {
    if (args[0] === "--version") return ok("wireguard-tools v1.0.20210914\n");
    const dev = this.devices.get(args[1]!);
    if (!dev) return err(`Unable to access interface: No such device`);
    if (args[0] === "show" && args[2] === "dump") return ok(this.dump(dev));
    if (args[0] !== "set") throw new Error(`FakeWgHost: unexpected wg ${args.join(" ")}`);
    const keyFile = (path: string): string | undefined => {
      if (path === "/dev/null") return undefined;
      if (path === "/dev/stdin" && stdin !== undefined) return stdin.trim();
      throw new Error(`FakeWgHost: wg key file ${path} without stdin`);
    };
    let peer: FakePeer | undefined;
    let pub: string | undefined;
    for (let i = 2; i < args.length; i++) {
      const word = args[i]!;
      const next = (): string => args[++i]!;
      if (word === "peer") {
        pub = next();
        peer = dev.peers.get(pub);
        if (!peer) dev.peers.set(pub, (peer = newPeer()));
      } else if (!peer || !pub) {
        if (word === "private-key") dev.privateKey = keyFile(next());
        else if (word === "listen-port") dev.listenPort = Number(next());
        else throw new Error(`FakeWgHost: unexpected wg set word ${word}`);
      } else if (word === "remove") {
        dev.peers.delete(pub);
      } else if (word === "endpoint") {
        peer.endpoint = next();
      } else if (word === "allowed-ips") {
        peer.allowedIps = next().split(",").filter(Boolean);
      } else if (word === "persistent-keepalive") {
        const v = next();
        peer.keepalive = v === "off" ? 0 : Number(v);
      } else if (word === "preshared-key") {
        peer.psk = keyFile(next());
      } else {
        throw new Error(`FakeWgHost: unexpected wg set peer word ${word}`);
      }
    }
    return ok();
  }

  private dump(dev: FakeDevice): string {
    const pubOf = "(derived)"; // the backend ignores field 2; no need to compute X25519 here
    const lines = [[dev.privateKey ?? "(none)", pubOf, String(dev.listenPort ?? 0), "off"].join("\t")];
    for (const [pub, p] of dev.peers) {
      const ips = p.allowedIps.length ? p.allowedIps.join(",") : "(none)";
      const ka = p.keepalive ? String(p.keepalive) : "off";
      lines.push(
        [pub, p.psk ?? "(none)", p.endpoint ?? "(none)", ips, p.handshakeSec, p.rx, p.tx, ka].join("\t"),
      );
    }
    return `${lines.join("\n")}\n`;
  }
}

const newPeer = (): FakePeer => ({ allowedIps: [], keepalive: 0, rx: 0, tx: 0, handshakeSec: 0 });
