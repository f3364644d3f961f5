/**
 * org.freedesktop.NetworkManager.Device: a network device NM manages
 * (for a wireguard profile: the WireGuard link NM created).
 *
 * Contracts (introspection/org.freedesktop.NetworkManager.Device.xml):
 * - GetAppliedConnection(u flags = 0) → (a{sa{sv}} connection, t version_id):
 *   what the device runs now; it differs from the stored profile after an
 *   Update2 until Reapply or reactivation. version_id is a uint64: a
 *   BigInt here (dbus-next without BigInt compat), sent back as one.
 * - Reapply(a{sa{sv}} connection, t version_id, u flags = 0): updates the
 *   device from `connection` (empty: from the stored profile) without
 *   deactivating it; version_id non-zero must match the applied one
 *   (org.freedesktop.NetworkManager.Device.VersionIdMismatch otherwise).
 *   Only some changes are allowed (addresses, routes, MTU, wireguard).
 *   WARNING, WireGuard: on NM 1.52 Reapply rebuilds the applied connection
 *   without the peers' preshared keys even when they are passed, and
 *   configures the kernel peers without PSK (issue 12). A caller that
 *   reapplies a profile with PSKs restores them on the kernel device right
 *   after (wg(8), keys on stdin), or does not reapply.
 * - Properties Interface s, IpInterface s, State u, ActiveConnection o.
 */
import type { NmClient } from "./client.js";
import type { SettingsDict } from "./wireguard-settings.js";

export const DEVICE_IFACE = "org.freedesktop.NetworkManager.Device";

export class NmDevice {
  constructor(
    private readonly nm: NmClient,
    readonly path: string,
  ) {}

  async getAppliedConnection(): Promise<{ settings: SettingsDict; versionId: bigint }> {
    const [settings, versionId] = await this.nm.call(
      this.path,
      DEVICE_IFACE,
      "GetAppliedConnection",
      "u",
      [0],
      "GetAppliedConnection",
    );
    return { settings: settings as SettingsDict, versionId: BigInt(versionId as bigint) };
  }

  /** Reapply; `settings` {} = the stored profile, versionId 0n = no check. */
  async reapply(settings: SettingsDict, versionId: bigint): Promise<void> {
    await this.nm.call(
      this.path,
      DEVICE_IFACE,
      "Reapply",
      "a{sa{sv}}tu",
      [settings, versionId, 0],
      "Reapply",
    );
  }
}
