/**
 * A host with systemd-networkd and kernel WireGuard, simulated on top of
 * the recording fakes: `networkctl reload` creates the device from the
 * .netdev in the memory file system (peers, keys read from their files) the
 * way networkd does, and `wg show/set` read and change the live device.
 * The plugin tests then check effects, not just command lists.
 */
import { wgKeyPairFromPrivate } from "../../../src/crypto/keys.js";
import { parseNetdev } from "../../../networkd/parse.js";
import {
  MemoryFileSystem,
  RecordingRunner,
  fail,
  ok,
  type RecordedCommand,
} from "../../../networkd/testing.js";

export interface LivePeer {
  publicKey: string;
  psk?: string;
  endpoint?: string;
  allowedIps: string[];
  keepalive: number;
  /** Bumped when the peer is re-created: a lost session. */
  generation: number;
}

export interface LiveDevice {
  privateKey?: string;
  listenPort: number;
  peers: Map<string, LivePeer>;
}

export class FakeWorld {
  readonly fs = new MemoryFileSystem({ "/etc/group": "root:x:0:\nsystemd-network:x:998:\n" });
  readonly runner = new RecordingRunner();
  readonly devices = new Map<string, LiveDevice>();
  networkdActive = true;
  networkManagerActive = false;
  /** systemd 257 behaviour: a reload re-sends all peers of an existing device (systemd#38196). */
  reloadResetsPeers = true;
  private generation = 0;

  constructor(readonly dir = "/etc/systemd/network") {
    this.runner.on((c) => this.handle(c));
  }

  private handle(c: RecordedCommand) {
    const cmd = [c.file, ...c.args].join(" ");
    if (cmd === "systemctl is-active systemd-networkd.service")
      return this.networkdActive ? ok("active\n") : { code: 3, stdout: "inactive\n", stderr: "" };
    if (cmd === "systemctl is-active NetworkManager.service")
      return this.networkManagerActive ? ok("active\n") : { code: 3, stdout: "inactive\n", stderr: "" };
    if (cmd === "wg --version") return ok("wireguard-tools v1.0.20210914\n");
    if (cmd === "networkctl reload") return this.reload();
    if (c.file === "networkctl" && c.args[0] === "delete") return this.del(c.args[1] as string);
    if (c.file === "wg" && c.args[0] === "show") return this.show(c.args[1] as string);
    if (c.file === "wg" && c.args[0] === "set") return this.set(c);
    return undefined;
  }

  private reload() {
    for (const name of this.fs.files.keys()) {
      if (!name.startsWith(`${this.dir}/`) || !name.endsWith(".netdev")) continue;
      const cfg = parseNetdev(this.fs.files.get(name)!.content, name).config;
      const existing = this.devices.get(cfg.name);
      if (existing && !this.reloadResetsPeers) continue;
      const read = (p?: string) => (p ? this.fs.files.get(p)?.content.trim() : undefined);
      const peers = new Map<string, LivePeer>();
      for (const p of cfg.peers) {
        const psk = read(p.presharedKeyFile);
        peers.set(p.publicKey, {
          publicKey: p.publicKey,
          ...(psk !== undefined && { psk }),
          ...(p.endpoint !== undefined && { endpoint: p.endpoint }),
          allowedIps: [...p.allowedIps],
          keepalive: p.persistentKeepalive ?? 0,
          generation: ++this.generation,
        });
      }
      const privateKey = read(cfg.privateKeyFile);
      this.devices.set(cfg.name, {
        ...(privateKey !== undefined && { privateKey }),
        listenPort: cfg.listenPort ?? 0,
        peers,
      });
    }
    return ok();
  }

  private del(name: string) {
    return this.devices.delete(name) ? ok() : fail(`Failed to delete ${name}: No such device`);
  }

  private show(name: string) {
    const d = this.devices.get(name);
    if (!d) return fail(`Unable to access interface: No such device\n`);
    const pub = d.privateKey ? wgKeyPairFromPrivate(d.privateKey).publicKey : "(none)";
    const lines = [[d.privateKey ?? "(none)", pub, d.listenPort, "off"].join("\t")];
    for (const p of d.peers.values())
      lines.push(
        [
          p.publicKey,
          p.psk ?? "(none)",
          p.endpoint ?? "(none)",
          p.allowedIps.length ? p.allowedIps.join(",") : "(none)",
          0,
          0,
          0,
          p.keepalive || "off",
        ].join("\t"),
      );
    return ok(`${lines.join("\n")}\n`);
  }

  /** Enough of wg(8) `set` for what the backend sends. Files named in args are read as stdin (/dev/stdin) or empty (/dev/null). */
  private set(c: RecordedCommand) {
    const [, name, ...rest] = c.args;
    const d = this.devices.get(name as string);
    if (!d) return fail("Unable to modify interface: No such device");
    const file = (path: string) => (path === "/dev/stdin" ? (c.stdin ?? "").trim() : "");
    let peer: LivePeer | undefined;
    for (let i = 0; i < rest.length; i++) {
      const word = rest[i] as string;
      const arg = rest[i + 1] as string;
      if (word === "peer") {
        peer = d.peers.get(arg) ?? {
          publicKey: arg,
          allowedIps: [],
          keepalive: 0,
          generation: ++this.generation,
        };
        d.peers.set(arg, peer);
        i++;
      } else if (word === "remove") {
        d.peers.delete(peer!.publicKey);
      } else if (!peer && word === "private-key") {
        d.privateKey = file(arg);
        i++;
      } else if (!peer && word === "listen-port") {
        d.listenPort = Number(arg);
        i++;
      } else if (peer && word === "preshared-key") {
        const v = file(arg);
        if (v) peer.psk = v;
        else delete peer.psk;
        i++;
      } else if (peer && word === "endpoint") {
        peer.endpoint = arg;
        i++;
      } else if (peer && word === "allowed-ips") {
        peer.allowedIps = arg ? arg.split(",") : [];
        i++;
      } else if (peer && word === "persistent-keepalive") {
        peer.keepalive = arg === "off" ? 0 : Number(arg);
        i++;
      } else return fail(`fake wg: unexpected word ${word}`);
    }
    return ok();
  }
}
