/**
 * A host with systemd-networkd and kernel WireGuard, simulated on top of
 * the recording fakes: `networkctl reload` creates the device from the
 * .netdev in the memory file system (peers, keys read from their files) the
 * way networkd does, and `wg show/set` read and change the live device
 * (src/wireguard's FakeWireGuard, the same one the wg backend's tests use).
 * The plugin tests then check effects, not just command lists.
 */
import { parseNetdev } from "../../../networkd/parse.js";
import { FakeWireGuard, type FakePeer } from "../../../src/wireguard/fakes.js";
import {
  MemoryFileSystem,
  RecordingRunner,
  fail,
  ok,
  type RecordedCommand,
} from "../../../networkd/testing.js";

export class FakeWorld {
  readonly fs = new MemoryFileSystem({ "/etc/group": "root:x:0:\nsystemd-network:x:998:\n" });
  readonly runner = new RecordingRunner();
  /** Kernel WireGuard: devices answering `wg show` and `wg set`. */
  readonly wireguard = new FakeWireGuard();
  readonly devices = this.wireguard.devices;
  networkdActive = true;
  networkManagerActive = false;
  /** systemd 257 behaviour: a reload re-sends all peers of an existing device (systemd#38196). */
  reloadResetsPeers = true;

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
    if (c.file === "wg" && (c.args[0] === "show" || c.args[0] === "set"))
      return this.wireguard.wg([...c.args], c.stdin);
    return undefined;
  }

  private reload() {
    for (const name of this.fs.files.keys()) {
      if (!name.startsWith(`${this.dir}/`) || !name.endsWith(".netdev")) continue;
      const cfg = parseNetdev(this.fs.files.get(name)!.content, name).config;
      const existing = this.devices.get(cfg.name);
      if (existing && !this.reloadResetsPeers) continue;
      const read = (p?: string) => (p ? this.fs.files.get(p)?.content.trim() : undefined);
      const peers = new Map<string, FakePeer>();
      for (const p of cfg.peers) {
        const psk = read(p.presharedKeyFile);
        peers.set(
          p.publicKey,
          this.wireguard.newPeer({
            ...(psk !== undefined && { psk }),
            ...(p.endpoint !== undefined && { endpoint: p.endpoint }),
            allowedIps: [...p.allowedIps],
            keepalive: p.persistentKeepalive ?? 0,
          }),
        );
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
}
