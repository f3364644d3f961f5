/**
 * org.freedesktop.NetworkManager.Connection.Active: one activation of a
 * profile, from ActivateConnection (or autoconnect) until it is
 * deactivated; then the object disappears from Manager.ActiveConnections.
 *
 * Contracts (introspection/org.freedesktop.NetworkManager.Connection.Active.xml):
 * - Properties: Connection o (the profile), Id s, Uuid s, Type s,
 *   State u (NMActiveConnectionState below), Devices ao.
 * - Signal StateChanged(u state, u reason), NM 1.8: sent on the active
 *   object's path; DEACTIVATED (4) is its last one.
 */
import type { Signal } from "./bus.js";
import type { NmClient } from "./client.js";

export const ACTIVE_IFACE = "org.freedesktop.NetworkManager.Connection.Active";

export const ActiveState = {
  UNKNOWN: 0,
  ACTIVATING: 1,
  ACTIVATED: 2,
  DEACTIVATING: 3,
  DEACTIVATED: 4,
} as const;

export class NmActiveConnection {
  constructor(
    private readonly nm: NmClient,
    readonly path: string,
  ) {}

  async connection(): Promise<string> {
    return (await this.nm.getProperty(this.path, ACTIVE_IFACE, "Connection")) as string;
  }

  async state(): Promise<number> {
    return Number(await this.nm.getProperty(this.path, ACTIVE_IFACE, "State"));
  }
}

/** StateChanged of every active connection (paths come and go); resolves once the match is in place. */
export function onActiveStateChanged(
  nm: NmClient,
  handler: (path: string, state: number, reason: number) => void,
): Promise<() => void> {
  return nm.watch({ interface: ACTIVE_IFACE, member: "StateChanged" }, (s: Signal) =>
    handler(s.path, Number(s.body[0]), Number(s.body[1])),
  );
}
