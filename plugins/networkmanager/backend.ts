/**
 * The NetworkManager Backend: the mesh is one persistent NM profile
 * "Scope NET" (type wireguard), so it shows in GNOME Settings, the top
 * bar and nmcli, and the user can switch it off and on. docs/backends.md
 * ("networkmanager") explains the decisions; in short:
 *
 * - The profile is created once (Settings.AddConnection2, to-disk |
 *   block-autoconnect, then Manager.ActivateConnection) and from then on
 *   updated in place with Settings.Connection.Update2, to-disk |
 *   no-reapply. Update2 replaces the whole profile, so it always carries
 *   every setting; it is only sent when the stored profile differs.
 * - The live device gets only the difference, through wg(8) on the kernel
 *   device (src/wireguard's diff and encoder, keys on stdin): an NM
 *   profile change never reaches an active device by itself (Update2
 *   "changes don't take effect for the active device unless the profile
 *   gets reactivated or the configuration reapplied"), and Device.Reapply
 *   would set every peer again and, on NM 1.52, drop the PSKs. So a peer
 *   added, removed or changed touches that peer only.
 * - Addresses and MTU (rare) need NM: Update2, then Device.Reapply, then
 *   the peers are put right again from the desired state (PSKs restored
 *   by wg(8)).
 * - The user is in charge: while the profile is not active (switched off
 *   in GNOME/nmcli) apply() only updates the stored profile, with
 *   block-autoconnect so the update does not bring it back up, and never
 *   calls ActivateConnection. onActiveChange reports off/on.
 * - A profile deleted by hand is logged when NM says so and every later
 *   apply() fails with a message that says so; allowRecreate() (on the
 *   user's request) lets the next apply() create it again.
 */
import type {
  ActiveStateSource,
  ApplyResult,
  Backend,
  BackendContext,
  DesiredState,
  HandshakeTrigger,
  PeerStats,
  ProbeResult,
} from "../../src/core/backend.js";
import { ScopeError } from "../../src/core/errors.js";
import { checkInterfaceName } from "../../src/core/names.js";
import { canonicalAddress, canonicalCidrs } from "../../src/core/ip.js";
import type { CommandRunner } from "../../src/exec.js";
import {
  describeChange,
  isEmptyPlan,
  normalizeDesired,
  planDevice,
  planLink,
  withKnownEndpoints,
} from "../../src/wireguard/diff.js";
import type { DeviceState } from "../../src/wireguard/model.js";
import { backendError } from "../../src/wireguard/control.js";
import { WgToolControl, wgToolRetrigger, wgToolStats } from "../../src/wireguard/wgtool.js";
import { ActiveState, NmActiveConnection, onActiveStateChanged } from "../../dbus/active.js";
import type { NmClient, NmLifecycleEvent } from "../../dbus/client.js";
import {
  NmConnection,
  UPDATE2_BLOCK_AUTOCONNECT,
  UPDATE2_NO_REAPPLY,
  UPDATE2_TO_DISK,
  update2FlagNames,
} from "../../dbus/connection.js";
import { NmDevice } from "../../dbus/device.js";
import { NmManager, NM_STATE_ASLEEP } from "../../dbus/manager.js";
import { ADD2_BLOCK_AUTOCONNECT, ADD2_TO_DISK, NmSettings } from "../../dbus/settings.js";
import { decodeProfile, encodeProfile, type WireGuardProfile } from "../../dbus/wireguard-settings.js";
import type { ProfileStore } from "./store.js";

/** WireGuard profiles exist since NetworkManager 1.16. */
export const MIN_NM_VERSION = [1, 16] as const;

export interface NmEnv {
  client: NmClient;
  /** wg(8) for the live kernel device. */
  runner: CommandRunner;
  /** Remembers the profile's uuid across daemon restarts (so a deletion while the daemon was down is seen). */
  store: ProfileStore;
  newUuid: () => string;
  /** [backend] firewall-mark. */
  fwmark?: number;
}

const versionOk = (v: string): boolean => {
  const [major = 0, minor = 0] = v.split(".").map(Number);
  return major > MIN_NM_VERSION[0] || (major === MIN_NM_VERSION[0] && minor >= MIN_NM_VERSION[1]);
};

/** The profile in a form where equal means "nothing to update". */
const canon = (p: WireGuardProfile): string =>
  JSON.stringify({
    ...p,
    addresses: [...p.addresses].map(canonicalAddress).sort(),
    peers: [...p.peers]
      .map((x) => ({ ...x, allowedIps: canonicalCidrs(x.allowedIps) }))
      .sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1)),
  });

/** A stored profile seen as a device, so src/wireguard's plan can describe the difference. */
const asDevice = (p: WireGuardProfile): DeviceState => ({
  privateKey: p.privateKey,
  listenPort: p.listenPort,
  peers: p.peers.map((x) => ({
    publicKey: x.publicKey,
    presharedKey: x.presharedKey,
    endpoint: x.endpoint,
    allowedIps: canonicalCidrs(x.allowedIps),
    persistentKeepalive: x.persistentKeepalive,
    rxBytes: 0,
    txBytes: 0,
  })),
});

export class NetworkManagerBackend implements Backend, HandshakeTrigger, ActiveStateSource {
  readonly name = "networkmanager";
  readonly profileId: string;
  private readonly settings: NmSettings;
  private readonly manager: NmManager;
  private iface: string | undefined;
  private uuid: string | undefined;
  private profilePath: string | undefined;
  /** The profile was deleted outside Scope; set until allowRecreate(). */
  private deletedByHand = false;
  private removing = false;
  /** Created by Scope, its first ActivateConnection not yet through. */
  private activationPending = false;
  private active: boolean | undefined;
  /** Each listener with the state it was last told. */
  private readonly listeners = new Map<(active: boolean) => void, boolean | undefined>();
  private watching: Promise<void> | undefined;
  private readonly unwatch: (() => void)[] = [];
  private refreshing: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: BackendContext,
    private readonly env: NmEnv,
  ) {
    this.profileId = `Scope ${ctx.network}`;
    this.settings = new NmSettings(env.client);
    this.manager = new NmManager(env.client);
    this.iface = ctx.options.interface || undefined;
  }

  async probe(): Promise<ProbeResult> {
    try {
      if (!(await this.env.client.nmRunning()))
        return { usable: false, detail: "NetworkManager is not on the system bus" };
      const version = await this.manager.version();
      if (!versionOk(version))
        return { usable: false, detail: `NetworkManager ${version} has no WireGuard profiles (needs 1.16)` };
      if (!(await this.manager.networkingEnabled()))
        return { usable: false, detail: `NetworkManager ${version} runs but networking is disabled` };
      if ((await this.manager.state()) <= NM_STATE_ASLEEP)
        return { usable: false, detail: `NetworkManager ${version} is asleep` };
      const wg = await this.env.runner.run("wg", ["--version"]);
      // wg(8) carries live peer changes; without it every change would need a session-dropping Reapply.
      if (wg.code !== 0)
        return {
          usable: false,
          detail: `NetworkManager ${version} runs, but wg(8) is missing (wireguard-tools)`,
        };
      return { usable: true, detail: `NetworkManager ${version} is running and manages networking` };
    } catch (err) {
      return { usable: false, detail: `NetworkManager not reachable: ${(err as Error).message}` };
    }
  }

  async apply(desired: DesiredState): Promise<ApplyResult> {
    let want: DesiredState;
    try {
      want = normalizeDesired(desired);
      const bad = checkInterfaceName(want.iface.name);
      if (bad) throw new Error(bad);
    } catch (err) {
      throw err instanceof ScopeError
        ? err
        : new ScopeError("config", `networkmanager: ${(err as Error).message}`);
    }
    const name = want.iface.name;
    const control = new WgToolControl(this.env.runner, name);
    const changes: string[] = [];
    let created = false;
    try {
      await this.startWatching();
      const path = await this.findProfile();
      if (path === undefined) {
        await this.create(want, await control.read(), changes);
        created = true;
      } else {
        await this.update(path, want, control, changes);
      }
      this.iface = name;
    } catch (err) {
      throw this.scrub(
        err,
        want,
        `networkmanager: apply of "${this.profileId}" failed after ${changes.length} change(s)`,
      );
    }
    if (changes.length)
      this.ctx.logger.info("networkmanager: applied", { profile: this.profileId, iface: name, changes });
    return created ? { changes, created } : { changes };
  }

  async stats(): Promise<PeerStats[]> {
    return wgToolStats(this.env.runner, await this.knownIface());
  }

  /** As the other backends: re-create the peer live so WireGuard initiates now; NM's profile is not touched. */
  async triggerHandshake(publicKey: string, seenHandshakeMs?: number): Promise<void> {
    await wgToolRetrigger(
      this.env.runner,
      await this.knownIface(),
      publicKey,
      "networkmanager",
      seenHandshakeMs,
    );
  }

  /**
   * The listener gets the profile's state once it is known (the profile
   * exists: true = activated, false = off), then every change: false when
   * the user switched it off (or deleted it), true when it is activated
   * again (by the user, or at boot by autoconnect). Never called for the
   * activation apply() itself does on creation, which the caller knows of.
   */
  onActiveChange(listener: (active: boolean) => void): () => void {
    this.listeners.set(listener, undefined);
    void this.startWatching()
      .then(() => this.refreshActive())
      .then(() => this.tell())
      .catch((err: Error) =>
        this.ctx.logger.warn("networkmanager: cannot watch the profile", { error: err.message }),
      );
    return () => this.listeners.delete(listener);
  }

  /** The user asked for the profile back (after deleting it by hand): the next apply() creates it again. */
  async allowRecreate(): Promise<void> {
    await this.env.store.clear();
    this.deletedByHand = false;
    this.uuid = undefined;
    this.profilePath = undefined;
  }

  /**
   * Without remove: only the bus connection closes; the profile stays
   * active and NM keeps the tunnel up. With remove: the profile is deleted
   * (NM takes the device down with it) and forgotten.
   */
  async close(options?: { remove?: boolean }): Promise<void> {
    try {
      if (options?.remove) {
        const path = await this.findProfile().catch(() => undefined);
        if (path) {
          this.removing = true;
          await new NmConnection(this.env.client, path, this.profileId).delete();
          this.ctx.logger.info("networkmanager: profile deleted", { profile: this.profileId });
        }
        await this.env.store.clear();
      }
    } catch (err) {
      throw backendError(`networkmanager: removing "${this.profileId}" failed`, err);
    } finally {
      for (const u of this.unwatch.splice(0)) u();
      this.listeners.clear();
      this.env.client.close();
    }
  }

  // ---- apply's two cases ---------------------------------------------------------------

  private async create(want: DesiredState, live: DeviceState | undefined, changes: string[]): Promise<void> {
    const uuid = this.env.newUuid();
    const profile = this.profileOf(withKnownEndpoints(want, live?.peers), uuid);
    // block-autoconnect: NM would otherwise autoconnect the new profile on its
    // own, racing the ActivateConnection below.
    const path = await this.settings.addConnection(
      encodeProfile(profile),
      ADD2_TO_DISK | ADD2_BLOCK_AUTOCONNECT,
      `"${this.profileId}"`,
    );
    this.uuid = uuid;
    this.profilePath = path;
    await this.env.store.save(uuid);
    changes.push(
      `profile "${this.profileId}" created (${want.peers.length} peer(s), interface ${want.iface.name})`,
    );
    await this.activateNew(path, changes);
  }

  /** The first activation of a profile Scope created; retried by the next apply() if NM refused it. */
  private async activateNew(path: string, changes: string[]): Promise<void> {
    this.activationPending = true;
    await this.manager.activateConnection(path, `"${this.profileId}"`);
    this.activationPending = false;
    this.active = true;
    changes.push(`profile "${this.profileId}" activated`);
  }

  private async update(
    path: string,
    want: DesiredState,
    control: WgToolControl,
    changes: string[],
  ): Promise<void> {
    const conn = new NmConnection(this.env.client, path, `"${this.profileId}"`);
    const stored = decodeProfile(await conn.getSettings(), await conn.getSecrets("wireguard"));
    if (!stored)
      throw new ScopeError(
        "conflict",
        `networkmanager: profile "${this.profileId}" is not a wireguard profile`,
      );
    const live = await control.read();
    const active = await this.isActive(path);
    const next = this.profileOf(withKnownEndpoints(want, live?.peers, stored.peers), stored.uuid);
    const profileChanged = canon(stored) !== canon(next);
    const linkChanges = planLink(
      { up: true, mtu: stored.mtu ?? 0, addresses: stored.addresses },
      want,
    ).filter((c) => c.kind !== "up");
    const renamed = stored.interfaceName !== next.interfaceName;

    if (!active && this.activationPending) {
      // Scope created it and NM refused the activation: not the user's switch, so try again.
      if (profileChanged) await conn.update2(encodeProfile(next), UPDATE2_TO_DISK | UPDATE2_NO_REAPPLY);
      await this.activateNew(path, changes);
      return;
    }
    if (!active) {
      if (profileChanged) {
        const flags = UPDATE2_TO_DISK | UPDATE2_NO_REAPPLY | UPDATE2_BLOCK_AUTOCONNECT;
        await conn.update2(encodeProfile(next), flags);
        const plan = planDevice(asDevice(stored), withKnownEndpoints(want, stored.peers));
        changes.push(
          ...[...plan.device, ...plan.peers, ...linkChanges].map((c) => `profile: ${describeChange(c)}`),
        );
        changes.push(
          `profile "${this.profileId}" saved (Update2 ${update2FlagNames(flags)}); it is switched off outside Scope and stays off`,
        );
      }
      return;
    }
    if (profileChanged) {
      const flags = UPDATE2_TO_DISK | UPDATE2_NO_REAPPLY;
      await conn.update2(encodeProfile(next), flags);
      changes.push(`profile "${this.profileId}" saved (Update2 ${update2FlagNames(flags)})`);
    }
    if (renamed) {
      // A new interface name needs a new device: reactivate (the user has it on).
      await this.manager.activateConnection(path, `"${this.profileId}"`);
      changes.push(`interface ${stored.interfaceName} => ${next.interfaceName}: profile reactivated`);
      return;
    }
    let now = live;
    if (linkChanges.length && live) {
      // Addresses and MTU are NM's to set; Reapply resets the peers (and
      // their PSKs on NM 1.52), so they are put right below.
      const device = await this.manager.deviceByIpIface(want.iface.name);
      if (device) {
        await new NmDevice(this.env.client, device).reapply({}, 0n);
        changes.push(
          ...linkChanges.map(describeChange),
          "device reapplied (addresses/MTU); peers restored by wg(8)",
        );
        now = await control.read();
      }
    }
    if (!now) return; // activating: NM configures the device from the profile just saved
    const plan = planDevice(now, want);
    if (!isEmptyPlan(plan)) await control.write(plan, want);
    changes.push(...plan.device.map(describeChange), ...plan.peers.map(describeChange));
  }

  private profileOf(want: DesiredState, uuid: string): WireGuardProfile {
    return {
      id: this.profileId,
      uuid,
      interfaceName: want.iface.name,
      autoconnect: true,
      privateKey: want.iface.privateKey,
      listenPort: want.iface.listenPort,
      ...(this.env.fwmark !== undefined && { fwmark: this.env.fwmark }),
      ...(want.iface.mtu !== undefined && { mtu: want.iface.mtu }),
      // No routes from allowed IPs (as networkd): the address prefix route carries the mesh.
      peerRoutes: false,
      addresses: want.iface.addresses,
      peers: want.peers.map((p) => ({
        publicKey: p.publicKey,
        ...(p.endpoint !== undefined && { endpoint: p.endpoint }),
        allowedIps: p.allowedIps,
        persistentKeepalive: p.persistentKeepalive ?? 0,
        ...(p.presharedKey !== undefined && { presharedKey: p.presharedKey }),
      })),
    };
  }

  // ---- finding the profile, following its state ---------------------------------------

  /**
   * The profile's current path; undefined when there is none yet. Throws
   * when it was deleted by hand. `judge` false (background refreshes):
   * a remembered profile NM does not list is not declared deleted there;
   * the next apply() decides. (NM takes its bus name only after reading
   * every profile, Settings.NewConnection's documentation says, so this
   * is caution, e.g. for a profile hidden by permissions.)
   */
  private async findProfile(judge = true): Promise<string | undefined> {
    if (this.deletedByHand) throw this.deletedError();
    if (this.profilePath) return this.profilePath;
    this.uuid ??= await this.env.store.load();
    if (this.uuid === undefined) return undefined;
    const path = await this.settings.connectionByUuid(this.uuid);
    if (path === undefined) {
      if (!judge) return undefined;
      this.markDeleted("it is gone from NetworkManager");
      throw this.deletedError();
    }
    this.profilePath = path;
    return path;
  }

  private deletedError(): ScopeError {
    return new ScopeError(
      "not_found",
      `networkmanager: profile "${this.profileId}" was deleted outside Scope (nmcli, GNOME Settings); ` +
        "Scope does not recreate it by itself: ask for it explicitly to get the mesh back",
    );
  }

  private markDeleted(how: string): void {
    if (this.deletedByHand) return;
    this.deletedByHand = true;
    this.profilePath = undefined;
    this.ctx.logger.warn(
      `networkmanager: profile "${this.profileId}" was deleted outside Scope (${how}); it is recreated only on request`,
      { profile: this.profileId },
    );
    this.report(false);
  }

  private async isActive(path: string): Promise<boolean> {
    for (const a of await this.manager.activeConnections()) {
      const ac = new NmActiveConnection(this.env.client, a);
      try {
        if ((await ac.connection()) !== path) continue;
        const state = await ac.state();
        // Activating counts as on: the user (or Scope's own creation) asked for it.
        return state === ActiveState.ACTIVATING || state === ActiveState.ACTIVATED;
      } catch {
        // an active connection that went away between the two calls is not ours
      }
    }
    return false;
  }

  /** Watches, registered (and awaited) before anything relies on them; the client re-adds them after a reconnect. */
  private startWatching(): Promise<void> {
    this.watching ??= (async () => {
      this.unwatch.push(this.env.client.onLifecycle((e) => this.lifecycle(e)));
      this.unwatch.push(
        await this.settings.onConnectionRemoved((path) => {
          if (path !== this.profilePath || this.removing) return;
          this.markDeleted("NetworkManager reported ConnectionRemoved");
        }),
      );
      this.unwatch.push(
        await this.manager.onPropertiesChanged((c) => "ActiveConnections" in c && this.queueRefresh()),
      );
      this.unwatch.push(await onActiveStateChanged(this.env.client, () => this.queueRefresh()));
    })().catch((err) => {
      this.watching = undefined;
      throw err;
    });
    return this.watching;
  }

  private lifecycle(e: NmLifecycleEvent): void {
    // Every path NM gave out is stale after a restart; look the profile up again by uuid.
    this.profilePath = undefined;
    if (e === "nm-stopped") {
      this.ctx.logger.warn("networkmanager: NetworkManager left the bus; waiting for it to come back");
      return;
    }
    this.ctx.logger.info(
      `networkmanager: ${e === "nm-started" ? "NetworkManager (re)started" : "D-Bus reconnected"}`,
    );
    this.queueRefresh();
  }

  private queueRefresh(): void {
    this.refreshing = this.refreshing
      .then(() => this.refreshActive())
      .catch((err: Error) =>
        this.ctx.logger.warn("networkmanager: cannot read the profile state", { error: err.message }),
      );
  }

  private async refreshActive(): Promise<void> {
    if (this.deletedByHand || this.removing) return;
    const path = await this.findProfile(false);
    if (path === undefined) return;
    this.report(await this.isActive(path));
  }

  private report(active: boolean): void {
    if (this.active === active) return;
    const was = this.active;
    this.active = active;
    if (was !== undefined)
      this.ctx.logger.info(
        `networkmanager: profile "${this.profileId}" is ${active ? "active" : "switched off"}`,
      );
    this.tell();
  }

  /** Every listener not yet told the current state hears it now. */
  private tell(): void {
    const active = this.active;
    if (active === undefined) return;
    for (const [l, told] of [...this.listeners]) {
      if (told === active || !this.listeners.has(l)) continue;
      this.listeners.set(l, active);
      l(active);
    }
  }

  /** After a restart before the first apply: the option, else the stored profile's interface-name. */
  private async knownIface(): Promise<string | undefined> {
    if (this.iface) return this.iface;
    const path = await this.findProfile(false).catch(() => undefined);
    if (!path) return undefined;
    const p = decodeProfile(
      await new NmConnection(this.env.client, path, `"${this.profileId}"`).getSettings(),
    );
    this.iface = p?.interfaceName || undefined;
    return this.iface;
  }

  /** The error with every secret of `want` cut out of its message (NM echoes values in some errors); the code is kept. */
  private scrub(err: unknown, want: DesiredState, context: string): ScopeError {
    const secrets = [want.iface.privateKey, ...want.peers.map((p) => p.presharedKey)].filter(
      (s): s is string => !!s,
    );
    const clean = (t: string) => secrets.reduce((acc, s) => acc.split(s).join("(secret)"), t);
    const text = err instanceof Error ? err.message : String(err);
    if (err instanceof ScopeError && text.startsWith("networkmanager: ")) {
      err.message = clean(text);
      return err;
    }
    const code = err instanceof ScopeError ? err.code : "backend";
    return new ScopeError(code, clean(`${context}: ${text}`), { cause: err });
  }
}
