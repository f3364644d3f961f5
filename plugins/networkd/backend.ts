/**
 * The networkd Backend. systemd-networkd owns the interface: Scope writes
 * 50-scope-NET.netdev/.network (+ key files) and lets networkd create the
 * device, so `networkctl status scope0` explains it and it comes back on
 * reboot from the files alone, daemon or not.
 *
 * What goes through networkd and what does not:
 * - interface missing → write files, `networkctl reload`: networkd creates
 *   it with every peer from the .netdev;
 * - device-level change ([NetDev]/[WireGuard], the private key, or the
 *   .network: addresses) → write files, set what WireGuard can take live,
 *   then `networkctl reload`;
 * - peer change only → `wg set` with just the difference (src/wireguard's
 *   diff and wg(8) encoder, shared with the wg backend) and rewrite the files for
 *   persistence and inspection, *without* a reload: a reload re-sends the
 *   whole peer list on systemd 257 and drops every session
 *   (systemd/systemd#38196), and adds nothing on 249-252 (#25547).
 */
import type {
  ApplyResult,
  Backend,
  BackendContext,
  DesiredState,
  HandshakeTrigger,
  PeerStats,
  ProbeResult,
} from "../../src/core/backend.js";
import { ScopeError } from "../../src/core/errors.js";
import {
  placeFiles,
  removeFiles,
  resolveOwnership,
  type FileSystem,
  type Ownership,
} from "../../networkd/files.js";
import { checkNetworkName, unitNames, type NetdevConfig } from "../../networkd/model.js";
import type { Networkctl } from "../../networkd/networkctl.js";
import { runChecked, type CommandRunner } from "../../src/exec.js";
import { parseNetdev } from "../../networkd/parse.js";
import { netdevModel, renderFiles, type RenderOptions } from "../../networkd/render.js";
import {
  describeChange,
  isEmptyPlan,
  normalizeDesired,
  planDevice,
  withKnownEndpoints,
} from "../../src/wireguard/diff.js";
import type { DeviceState } from "../../src/wireguard/model.js";
import { backendError } from "../../src/wireguard/control.js";
import { WgToolControl, wgToolRetrigger, wgToolStats } from "../../src/wireguard/wgtool.js";

export interface NetworkdEnv {
  fs: FileSystem;
  runner: CommandRunner;
  networkctl: Networkctl;
  /** Render options fixed by configuration: dir, firewall mark, route table/metric. */
  render: Omit<RenderOptions, "network">;
  /** Where /etc/group is; tests point it into the memory file system. */
  groupFile?: string;
}

/** The .netdev as it is on disk; undefined when missing or unreadable (then everything counts as changed). */
const readNetdev = (text: string | undefined, file: string): NetdevConfig | undefined => {
  if (text === undefined) return undefined;
  try {
    return parseNetdev(text, file).config;
  } catch {
    return undefined;
  }
};

/** The netdev without its peers: what only a reload (or a new device) can change in networkd's view. */
const deviceLevel = (cfg: NetdevConfig | undefined): string | undefined => {
  if (cfg === undefined) return undefined;
  const { peers: _peers, ...device } = cfg;
  return JSON.stringify(device);
};

/**
 * What the files should say about each peer's endpoint. The engine leaves
 * a peer's endpoint out when it has no new opinion (WireGuard roaming: keep
 * what WireGuard learned), which is right for the live device but would
 * leave the .netdev without any Endpoint=, and after a reboot networkd would
 * bring the peers back with nowhere to send to. So a peer without a desired
 * endpoint is written with the one WireGuard uses now, else the one the
 * files already had (interface gone, e.g. deleted by hand).
 */
export const persistedEndpoints = (
  want: DesiredState,
  live: DeviceState | undefined,
  onDisk: NetdevConfig | undefined,
): DesiredState => withKnownEndpoints(want, live?.peers, onDisk?.peers);

export class NetworkdBackend implements Backend, HandshakeTrigger {
  readonly name = "networkd";
  private iface: string | undefined;
  private ownership: Ownership | undefined;
  private readonly names;
  private readonly dir: string;

  constructor(
    private readonly ctx: BackendContext,
    private readonly env: NetworkdEnv,
  ) {
    const bad = checkNetworkName(ctx.network);
    if (bad) throw new ScopeError("config", `networkd: ${bad}`);
    this.names = unitNames(ctx.network);
    this.dir = env.render.dir ?? "/etc/systemd/network";
    this.iface = ctx.options.interface || undefined;
  }

  async probe(): Promise<ProbeResult> {
    const { active, detail } = await this.env.networkctl.isActive();
    if (!active) return { usable: false, detail };
    // `auto` must not hand the tunnel to networkd behind NetworkManager's back:
    // where both run, NetworkManager owns networking (docs/backends.md).
    const nm = await this.env.networkctl.networkManagerActive();
    if (nm.active) return { usable: false, detail: `${detail}, but ${nm.detail} and manages networking` };
    const wg = await this.env.runner.run("wg", ["--version"]);
    // wg(8) applies live peer changes; without it every change would need a session-dropping reload.
    if (wg.code !== 0) return { usable: false, detail: `${detail}, but wg(8) is missing (wireguard-tools)` };
    return { usable: true, detail };
  }

  async apply(desired: DesiredState): Promise<ApplyResult> {
    let want: DesiredState;
    try {
      want = normalizeDesired(desired);
      netdevModel(want, this.renderOptions()); // validates everything before any effect
    } catch (err) {
      throw err instanceof ScopeError ? err : new ScopeError("config", `networkd: ${(err as Error).message}`);
    }
    const name = want.iface.name;
    const control = new WgToolControl(this.env.runner, name);
    const changes: string[] = [];
    let created = false;
    try {
      const netdevPath = `${this.dir}/${this.names.netdev}`;
      const onDisk = readNetdev(await this.env.fs.readFile(netdevPath), netdevPath);
      const live = await control.read();
      const placed = await placeFiles(
        this.env.fs,
        this.dir,
        this.names.prefix,
        renderFiles(persistedEndpoints(want, live, onDisk), this.renderOptions()),
        await this.owner(),
      );
      changes.push(
        ...placed.written.map((f) => `file ${f} written`),
        ...placed.removed.map((f) => `file ${f} removed`),
      );
      changes.push(...placed.repaired.map((f) => `file ${f} owner/mode repaired`));
      const after = readNetdev(await this.env.fs.readFile(netdevPath), netdevPath);
      const deviceChanged =
        deviceLevel(onDisk) !== deviceLevel(after) ||
        placed.written.includes(this.names.privateKey) ||
        placed.written.includes(this.names.network);

      if (!live) {
        // Only files this apply wrote for the first time make the interface ours to remove.
        created = onDisk === undefined;
        await this.env.networkctl.reload();
        changes.push(`interface ${name} handed to systemd-networkd (networkctl reload)`);
      } else {
        const plan = planDevice(live, want);
        if (!isEmptyPlan(plan)) await control.write(plan, want);
        changes.push(...plan.device.map(describeChange), ...plan.peers.map(describeChange));
        if (deviceChanged) {
          await this.applyMtu(name, want.iface.mtu);
          await this.env.networkctl.reload();
          changes.push("device settings changed: networkctl reload");
        }
      }
      this.iface = name;
    } catch (err) {
      throw backendError(`networkd: apply to ${name} failed after ${changes.length} change(s)`, err);
    }
    if (changes.length) this.ctx.logger.info("networkd: applied", { iface: name, changes });
    return created ? { changes, created } : { changes };
  }

  async stats(): Promise<PeerStats[]> {
    return wgToolStats(this.env.runner, await this.knownIface());
  }

  /**
   * As in the wg backend: re-create the peer live with its learned endpoint
   * so WireGuard initiates now. networkd keeps no per-peer state, so this
   * does not disturb it; the files do not change.
   */
  async triggerHandshake(publicKey: string, seenHandshakeMs?: number): Promise<void> {
    await wgToolRetrigger(this.env.runner, await this.knownIface(), publicKey, "networkd", seenHandshakeMs);
  }

  /**
   * Without remove: nothing. The files stay, networkd keeps the interface,
   * and a reboot brings it back from the files alone.
   * With remove: files first (so nothing re-creates the device), then the
   * link, then a reload so networkd forgets the netdev.
   */
  async close(options?: { remove?: boolean }): Promise<void> {
    if (!options?.remove) return;
    const iface = await this.knownIface();
    try {
      const removed = await removeFiles(this.env.fs, this.dir, this.names.prefix);
      if (iface) await this.deleteLink(iface);
      await this.env.networkctl.reload();
      this.ctx.logger.info("networkd: removed", { iface, files: removed });
    } catch (err) {
      throw backendError(`networkd: removing ${iface ?? this.ctx.network} failed`, err);
    }
  }

  private renderOptions(): RenderOptions {
    return { ...this.env.render, network: this.ctx.network };
  }

  private async owner(): Promise<Ownership> {
    if (!this.ownership) {
      this.ownership = await resolveOwnership(this.env.fs, this.env.groupFile);
      if (this.ownership.note) this.ctx.logger.warn(`networkd: ${this.ownership.note}`);
    }
    return this.ownership;
  }

  /** After a daemon restart the .netdev on disk names the interface. */
  private async knownIface(): Promise<string | undefined> {
    if (this.iface) return this.iface;
    const path = `${this.dir}/${this.names.netdev}`;
    const text = await this.env.fs.readFile(path);
    if (text === undefined) return undefined;
    try {
      this.iface = parseNetdev(text, path).config.name;
    } catch (err) {
      this.ctx.logger.warn("networkd: cannot read interface name from netdev", { path, error: String(err) });
    }
    return this.iface;
  }

  /** networkd applies MTUBytes= only when it creates the device; set it live too. */
  private async applyMtu(iface: string, mtu: number | undefined): Promise<void> {
    if (mtu !== undefined)
      await runChecked(this.env.runner, "ip", ["link", "set", "dev", iface, "mtu", String(mtu)]);
  }

  private async deleteLink(iface: string): Promise<void> {
    try {
      await this.env.networkctl.deleteLink(iface);
    } catch {
      // networkctl delete needs networkd running; ip does not. Gone already is fine.
      const r = await this.env.runner.run("ip", ["link", "del", "dev", iface]);
      if (r.code !== 0 && !/Cannot find device|does not exist/i.test(r.stderr))
        throw new Error(`ip link del ${iface}: ${r.stderr.trim()}`);
    }
  }
}
