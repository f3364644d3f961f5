/**
 * A fake WireGuard for tests, next to the seams it stands behind: it holds
 * devices in memory and answers UAPI requests (UapiTransport) and the wg(8)
 * subset the encoders send (CommandRunner), the way wireguard-go and
 * wireguard-tools would, so a second apply sees what the first one wrote.
 *
 * Set semantics follow wireguard-go's IpcSetOperation (update_only, remove,
 * replace_allowed_ips, unknown key → errno=-22). Anything outside the
 * subset fails loudly. Backend fakes (plugins/wg/fakes.ts) add the link,
 * the host and the log around it.
 */
import type { RunResult } from "../exec.js";
import { keyFromHex, keyToHex, UapiUnavailableError, type UapiTransport } from "./uapi.js";

export interface FakePeer {
  /** Counts peer creations across the fake: a new number means a re-created peer, i.e. a lost session. */
  generation: number;
  psk?: string;
  endpoint?: string;
  allowedIps: string[];
  keepalive: number;
  rx: number;
  tx: number;
  handshakeSec: number;
}

export interface FakeDevice {
  privateKey?: string;
  listenPort?: number;
  peers: Map<string, FakePeer>;
}

const ok = (stdout = ""): RunResult => ({ code: 0, stdout, stderr: "" });
const err = (stderr: string, code = 1): RunResult => ({ code, stdout: "", stderr });

export class FakeWireGuard {
  readonly devices = new Map<string, FakeDevice>();
  private generation = 0;

  /** A new device with no key, port or peers (what `ip link add` or a fresh wireguard-go gives). */
  create(iface: string): void {
    this.devices.set(iface, { peers: new Map() });
  }

  /** A peer as `wg set ... peer` or UAPI public_key= would create it (with a new generation). */
  newPeer(fields: Partial<Omit<FakePeer, "generation">> = {}): FakePeer {
    return {
      allowedIps: [],
      keepalive: 0,
      rx: 0,
      tx: 0,
      handshakeSec: 0,
      ...fields,
      generation: ++this.generation,
    };
  }

  delete(iface: string): void {
    this.devices.delete(iface);
  }

  /** WireGuard learned a new endpoint by itself (roaming). */
  roam(iface: string, publicKey: string, endpoint: string): void {
    this.devices.get(iface)!.peers.get(publicKey)!.endpoint = endpoint;
  }

  /** A handshake with the peer completed at `atSec` (Unix seconds). */
  handshake(iface: string, publicKey: string, atSec: number): void {
    this.devices.get(iface)!.peers.get(publicKey)!.handshakeSec = atSec;
  }

  /**
   * One UAPI request on the device's socket; the reply as wireguard-go
   * writes it, or undefined when no device has that name (no socket).
   */
  uapi(iface: string, text: string): string | undefined {
    const dev = this.devices.get(iface);
    if (!dev) return undefined;
    if (text === "get=1\n\n") return this.uapiGet(dev);
    if (!text.startsWith("set=1\n") || !text.endsWith("\n\n")) return "errno=-71\n\n";
    return `errno=${this.uapiSet(dev, text.slice(6, -2).split("\n"))}\n\n`;
  }

  /** The UapiTransport seam over uapi(): what a client of /var/run/wireguard/IFACE.sock sees. */
  transport(iface: string, path = `/var/run/wireguard/${iface}.sock`): UapiTransport {
    return {
      request: async (text) => {
        const reply = this.uapi(iface, text);
        if (reply === undefined) throw new UapiUnavailableError(path);
        return reply;
      },
    };
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
        if (!peer) dev.peers.set(pub, (peer = this.newPeer()));
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

  /** One wg(8) invocation (args after "wg"); `stdin` feeds /dev/stdin key files. */
  wg(args: string[], stdin: string | undefined): RunResult {
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
        if (!peer) dev.peers.set(pub, (peer = this.newPeer()));
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
