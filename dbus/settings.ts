/**
 * org.freedesktop.NetworkManager.Settings at /org/freedesktop/NetworkManager/Settings:
 * the stored connection profiles.
 *
 * Contracts (introspection/org.freedesktop.NetworkManager.Settings.xml):
 * - AddConnection2(a{sa{sv}} settings, u flags, a{sv} args) → (o path, a{sv} result),
 *   since NM 1.20. Flags: 0x1 TO_DISK (persist, keyfile under
 *   /etc/NetworkManager/system-connections/, root 0600), 0x2 IN_MEMORY,
 *   0x20 BLOCK_AUTOCONNECT (do not autoconnect until activated by hand).
 *   Exactly one of TO_DISK / IN_MEMORY. args must be empty (unknown keys fail).
 * - AddConnection(a{sa{sv}}) → o: the pre-1.20 call, always to disk. An NM
 *   without AddConnection2 answers org.freedesktop.DBus.Error.UnknownMethod;
 *   addConnection() then falls back for a TO_DISK profile. BLOCK_AUTOCONNECT
 *   is lost on the way: NM may start autoconnecting the new profile, which a
 *   caller's own ActivateConnection right after simply restarts. IN_MEMORY
 *   cannot be had from AddConnection and fails.
 * - GetConnectionByUuid(s) → o; fails with
 *   org.freedesktop.NetworkManager.Settings.InvalidConnection when unknown.
 * - ListConnections() → ao.
 * - Signals NewConnection(o), ConnectionRemoved(o): also for profiles
 *   added or deleted by hand (nmcli, GNOME, a keyfile edit + reload).
 */
import type { Signal } from "./bus.js";
import type { NmClient } from "./client.js";
import { isUnknownMethod, nmError } from "./errors.js";
import type { SettingsDict } from "./wireguard-settings.js";

export const SETTINGS_PATH = "/org/freedesktop/NetworkManager/Settings";
export const SETTINGS_IFACE = "org.freedesktop.NetworkManager.Settings";

export const ADD2_TO_DISK = 0x1;
export const ADD2_IN_MEMORY = 0x2;
export const ADD2_BLOCK_AUTOCONNECT = 0x20;

export class NmSettings {
  constructor(private readonly nm: NmClient) {}

  /** Adds a profile; `flags` as AddConnection2. Falls back to AddConnection on NM < 1.20. */
  async addConnection(settings: SettingsDict, flags: number, what: string): Promise<string> {
    try {
      const [path] = await this.nm.call(
        SETTINGS_PATH,
        SETTINGS_IFACE,
        "AddConnection2",
        "a{sa{sv}}ua{sv}",
        [settings, flags, {}],
        `AddConnection2 of ${what}`,
      );
      return path as string;
    } catch (err) {
      if (!isUnknownMethod(err)) throw err;
      if (!(flags & ADD2_TO_DISK) || flags & ADD2_IN_MEMORY)
        throw nmError(`AddConnection of ${what}: an in-memory profile needs NetworkManager 1.20`, err);
    }
    const [path] = await this.nm.call(
      SETTINGS_PATH,
      SETTINGS_IFACE,
      "AddConnection",
      "a{sa{sv}}",
      [settings],
      `AddConnection of ${what}`,
    );
    return path as string;
  }

  async listConnections(): Promise<string[]> {
    const [paths] = await this.nm.call(
      SETTINGS_PATH,
      SETTINGS_IFACE,
      "ListConnections",
      "",
      [],
      "ListConnections",
    );
    return paths as string[];
  }

  /** The profile's path, or undefined when NM has no profile with that uuid. */
  async connectionByUuid(uuid: string): Promise<string | undefined> {
    const path = await this.nm.lookup(
      SETTINGS_PATH,
      SETTINGS_IFACE,
      "GetConnectionByUuid",
      "s",
      [uuid],
      /\.(InvalidConnection|UnknownConnection)$/,
    );
    return path as string | undefined;
  }

  /** ConnectionRemoved(o) for any profile; resolves once the match is in place. */
  onConnectionRemoved(handler: (path: string) => void): Promise<() => void> {
    return this.nm.watch(
      { path: SETTINGS_PATH, interface: SETTINGS_IFACE, member: "ConnectionRemoved" },
      (s: Signal) => handler(s.body[0] as string),
    );
  }
}
