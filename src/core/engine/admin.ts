/**
 * The admin slice: whether the tunnel may run. Two switches hold it, and
 * the engine runs only while both allow:
 *
 * - the backend's own switch (NetworkManager: the user toggles the
 *   connection off in GNOME or nmcli), reported as `backendActive`;
 * - an admin pause (cc.ltgc.Scope1 Pause/Resume, root or group `scope`),
 *   reported as `adminPause`. It never touches the backend's switch: the
 *   tunnel stays as it is, only Scope stops changing it.
 *
 * While paused the engine makes no applies, no handshake triggers and no
 * probes, and `scope status` says why. When both allow again it applies the
 * whole peer set again and starts a new attempt toward every peer.
 */

export interface AdminState {
  /** Both switches allow: the engine runs. */
  active: boolean;
  /** The backend's switch is on (always, for backends without one). */
  switchedOn: boolean;
  /** An admin paused the engine. */
  paused: boolean;
  /** When `active` last changed (epoch ms). */
  since: number;
}

/** What `scope status` and cc.ltgc.Scope1 show: running, or which switch stops it (the backend's wins). */
export type AdminMode = "active" | "switched-off" | "paused";

export const newAdminState = (): AdminState => ({
  active: true,
  switchedOn: true,
  paused: false,
  since: 0,
});

export type AdminInput = { switchedOn: boolean } | { paused: boolean };

export const adminMode = (a: AdminState): AdminMode =>
  !a.switchedOn ? "switched-off" : a.paused ? "paused" : "active";

/** The reason `scope status` gives for every peer while the tunnel is switched off. */
export const PAUSED_REASON = "paused: the tunnel is switched off";
/** ... and while an admin paused it. */
export const ADMIN_PAUSED_REASON = "paused by an admin (Resume over cc.ltgc.Scope1 undoes it)";

export const pausedReason = (a: AdminState): string => (a.switchedOn ? ADMIN_PAUSED_REASON : PAUSED_REASON);

/** Applies an input; true when `active` changed (paused → active: the caller re-applies and re-attempts). */
export function setAdmin(admin: AdminState, input: AdminInput, now: number): boolean {
  if ("switchedOn" in input) admin.switchedOn = input.switchedOn;
  else admin.paused = input.paused;
  const active = admin.switchedOn && !admin.paused;
  if (admin.active === active) return false;
  admin.active = active;
  admin.since = now;
  return true;
}
