/**
 * org.freedesktop.NetworkManager at /org/freedesktop/NetworkManager.
 *
 * Contracts (introspection/org.freedesktop.NetworkManager.xml):
 * - ActivateConnection(o connection, o device, o specific_object) → o active:
 *   "/" for device lets NM pick (a wireguard profile creates its own
 *   device from connection.interface-name); returns at once, activation
 *   goes on (watch Connection.Active.StateChanged).
 * - DeactivateConnection(o active): what `nmcli connection down` does; NM
 *   then blocks autoconnect of the profile until it is activated again.
 * - GetDeviceByIpIface(s) → o; org.freedesktop.NetworkManager.UnknownDevice if none.
 * - Properties: ActiveConnections ao, NetworkingEnabled b, State u
 *   (NMState: 10 asleep, 20 disconnected, 30 disconnecting, 40 connecting,
 *   50 connected-local, 60 connected-site, 70 connected-global), Version s.
 *   Changes arrive as org.freedesktop.DBus.Properties.PropertiesChanged
 *   (interface org.freedesktop.NetworkManager) on the manager path.
 */
import { Variant } from "dbus-next";
import { PROPERTIES, type Signal } from "./bus.js";
import { NM_PATH, type NmClient } from "./client.js";

export const MANAGER_IFACE = "org.freedesktop.NetworkManager";

export const NM_STATE_ASLEEP = 10;

export class NmManager {
  constructor(private readonly nm: NmClient) {}

  async activateConnection(connection: string, what: string): Promise<string> {
    const [active] = await this.nm.call(
      NM_PATH,
      MANAGER_IFACE,
      "ActivateConnection",
      "ooo",
      [connection, "/", "/"],
      `ActivateConnection of ${what}`,
    );
    return active as string;
  }

  async deactivateConnection(active: string, what: string): Promise<void> {
    await this.nm.call(
      NM_PATH,
      MANAGER_IFACE,
      "DeactivateConnection",
      "o",
      [active],
      `DeactivateConnection of ${what}`,
    );
  }

  async deviceByIpIface(iface: string): Promise<string | undefined> {
    const path = await this.nm.lookup(
      NM_PATH,
      MANAGER_IFACE,
      "GetDeviceByIpIface",
      "s",
      [iface],
      /\.UnknownDevice$/,
    );
    return path as string | undefined;
  }

  async activeConnections(): Promise<string[]> {
    return (await this.nm.getProperty(NM_PATH, MANAGER_IFACE, "ActiveConnections")) as string[];
  }

  async networkingEnabled(): Promise<boolean> {
    return (await this.nm.getProperty(NM_PATH, MANAGER_IFACE, "NetworkingEnabled")) === true;
  }

  async state(): Promise<number> {
    return Number(await this.nm.getProperty(NM_PATH, MANAGER_IFACE, "State"));
  }

  async version(): Promise<string> {
    return String(await this.nm.getProperty(NM_PATH, MANAGER_IFACE, "Version"));
  }

  /** PropertiesChanged of the manager, e.g. ActiveConnections. Resolves once the match is in place. */
  onPropertiesChanged(handler: (changed: Record<string, unknown>) => void): Promise<() => void> {
    return this.nm.watch(
      { path: NM_PATH, interface: PROPERTIES, member: "PropertiesChanged" },
      (s: Signal) => {
        if (s.body[0] !== MANAGER_IFACE) return;
        const changed: Record<string, unknown> = {};
        for (const [k, v] of Object.entries((s.body[1] ?? {}) as Record<string, unknown>))
          changed[k] = v instanceof Variant ? v.value : v;
        handler(changed);
      },
    );
  }
}
