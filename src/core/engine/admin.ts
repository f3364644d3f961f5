/**
 * The admin slice: whether the user lets the tunnel run. A backend with an
 * active state of its own (NetworkManager: the user toggles the connection
 * off in GNOME) reports it as `backendActive`; while paused the engine makes
 * no applies, no handshake triggers and no probes, and `scope status` says
 * so. On resume it applies the whole peer set again and starts a new
 * attempt toward every peer.
 */

export interface AdminState {
  active: boolean;
  /** When it last changed (epoch ms). */
  since: number;
}

export const newAdminState = (): AdminState => ({ active: true, since: 0 });

/** The reason `scope status` gives for every peer while paused. */
export const PAUSED_REASON = "paused: the tunnel is switched off";

/** Applies an input; true when the state changed (paused → active: the caller re-applies and re-attempts). */
export function setActive(admin: AdminState, active: boolean, now: number): boolean {
  if (admin.active === active) return false;
  admin.active = active;
  admin.since = now;
  return true;
}
