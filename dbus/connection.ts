/**
 * org.freedesktop.NetworkManager.Settings.Connection: one stored profile,
 * at a path that is valid until the profile is deleted or NM restarts.
 *
 * Contracts (introspection/org.freedesktop.NetworkManager.Settings.Connection.xml):
 * - GetSettings() → a{sa{sv}}: never contains secrets.
 * - GetSecrets(s setting) → a{sa{sv}}: the secrets of one setting
 *   ("wireguard": private-key and, per peer in peers, preshared-key), only
 *   from NM's own storage or an agent of the caller's session; root only
 *   for a system profile with flags 0. Never prompts.
 * - Update2(a{sa{sv}} settings, u flags, a{sv} args) → a{sv} (NM 1.12):
 *   replaces ALL settings of the profile (a setting left out is removed),
 *   so the caller always sends the whole profile. Flags: 0x1 TO_DISK,
 *   0x2 IN_MEMORY, 0x4 IN_MEMORY_DETACHED, 0x8 IN_MEMORY_ONLY, 0x10 VOLATILE,
 *   0x20 BLOCK_AUTOCONNECT (an updated profile with autoconnect otherwise
 *   becomes eligible to autoconnect right away), 0x40 NO_REAPPLY (NM 1.20:
 *   changes to an active profile do not touch the device, not even
 *   connection.zone / connection.metered, until it is reactivated or
 *   reapplied). Unknown flags fail the call
 *   (org.freedesktop.NetworkManager.Settings.InvalidArguments): on NM
 *   1.12-1.18 update2() therefore retries once without NO_REAPPLY and
 *   leaves it off for that client from then on.
 *   Without NO_REAPPLY an Update2 still does not reconfigure the device
 *   (only zone/metered are reapplied): a device change needs
 *   Device.Reapply or a reactivation (Device.Reapply's documentation).
 * - Delete(): removes the profile; an active one is deactivated.
 * - Signals Updated() (re-read with GetSettings) and Removed() (the object
 *   is gone; Settings.ConnectionRemoved says the same).
 */
import type { NmClient } from "./client.js";
import type { NmError } from "./errors.js";
import type { SettingsDict } from "./wireguard-settings.js";

export const CONNECTION_IFACE = "org.freedesktop.NetworkManager.Settings.Connection";

export const UPDATE2_TO_DISK = 0x1;
export const UPDATE2_IN_MEMORY = 0x2;
export const UPDATE2_BLOCK_AUTOCONNECT = 0x20;
export const UPDATE2_NO_REAPPLY = 0x40;

/** Flags as text for logs and recordings: "to-disk|no-reapply". */
export function update2FlagNames(flags: number): string {
  const names: [number, string][] = [
    [UPDATE2_TO_DISK, "to-disk"],
    [UPDATE2_IN_MEMORY, "in-memory"],
    [0x4, "in-memory-detached"],
    [0x8, "in-memory-only"],
    [0x10, "volatile"],
    [UPDATE2_BLOCK_AUTOCONNECT, "block-autoconnect"],
    [UPDATE2_NO_REAPPLY, "no-reapply"],
  ];
  return (
    names
      .filter(([bit]) => flags & bit)
      .map(([, n]) => n)
      .join("|") || "none"
  );
}

export class NmConnection {
  constructor(
    private readonly nm: NmClient,
    readonly path: string,
    /** Names the profile in error messages ("Scope corp"). */
    private readonly what: string,
  ) {}

  async getSettings(): Promise<SettingsDict> {
    const [d] = await this.nm.call(
      this.path,
      CONNECTION_IFACE,
      "GetSettings",
      "",
      [],
      `GetSettings of ${this.what}`,
    );
    return d as SettingsDict;
  }

  async getSecrets(setting: string): Promise<SettingsDict> {
    const [d] = await this.nm.call(
      this.path,
      CONNECTION_IFACE,
      "GetSecrets",
      "s",
      [setting],
      `GetSecrets(${setting}) of ${this.what}`,
    );
    return d as SettingsDict;
  }

  async update2(settings: SettingsDict, flags: number): Promise<void> {
    const send = (f: number) =>
      this.nm.call(
        this.path,
        CONNECTION_IFACE,
        "Update2",
        "a{sa{sv}}ua{sv}",
        [settings, f, {}],
        `Update2 (${update2FlagNames(f)}) of ${this.what}`,
      );
    if (!this.nm.quirks.update2NoReapply) flags &= ~UPDATE2_NO_REAPPLY;
    try {
      await send(flags);
    } catch (err) {
      const older = flags & UPDATE2_NO_REAPPLY && /\.InvalidArguments$/.test((err as NmError).dbusName ?? "");
      if (!older) throw err;
      this.nm.quirks.update2NoReapply = false;
      await send(flags & ~UPDATE2_NO_REAPPLY);
    }
  }

  async delete(): Promise<void> {
    await this.nm.call(this.path, CONNECTION_IFACE, "Delete", "", [], `Delete of ${this.what}`);
  }

  onRemoved(handler: () => void): Promise<() => void> {
    return this.nm.watch({ path: this.path, interface: CONNECTION_IFACE, member: "Removed" }, () =>
      handler(),
    );
  }

  onUpdated(handler: () => void): Promise<() => void> {
    return this.nm.watch({ path: this.path, interface: CONNECTION_IFACE, member: "Updated" }, () =>
      handler(),
    );
  }
}
