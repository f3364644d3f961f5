/**
 * The join state machine as a reducer: step(state, input, now) → {state, effects}.
 *
 * Every input is handled in two parts: the input's own bookkeeping (a switch
 * over input.type), which changes facts and marks the peers it touched,
 * then one reconcile() that works out, from the facts now known, what those
 * peers' paths are and which effects follow — like tailscale's
 * nextStateLocked, so no handler assigns a path by itself. An input that
 * changes nothing (a rejected probe, an unchanged stats row) ends before
 * reconcile.
 *
 * The state is split in slices, each in its own file with its own deadline:
 * paths (paths.ts, probing.ts, reports.ts), routing (routing.ts), kex
 * (kex.ts), admin (admin.ts); desired.ts composes them into one peer set.
 *
 * The state is used linearly: step() updates it in place and returns it; a
 * caller never keeps an older value. Everything is deterministic given the
 * inputs, the times and cfg.nonceSalt.
 */
import type { NetcheckReport } from "../netcheck.js";
import { newAdminState, setAdmin } from "./admin.js";
import { newDeadlines } from "./deadlines.js";
import { log } from "./log.js";
import { onEvent, onJoined, onResync } from "./membership.js";
import { noteStats, restartAttempt } from "./paths.js";
import { newProbeBook, receiveProbe } from "./probing.js";
import { kexRotateNow, newKexShared } from "./kex.js";
import { reconcile } from "./reconcile.js";
import { newRoutingState } from "./routing.js";
import { mergeNetcheck, migrateIfChanged } from "./self.js";
import type { EngineConfig, EngineEffect, EngineInput, EngineState, StepResult } from "./types.js";

export { selfCandidates } from "./self.js";

export function createEngineState(
  cfg: EngineConfig,
  addresses: string[],
  netcheck: NetcheckReport | undefined,
): EngineState {
  return {
    cfg,
    self: undefined,
    network: undefined,
    joinedAt: 0,
    peerConnSent: false,
    addresses: [...addresses],
    netcheck,
    reportedSelf: [],
    peers: new Map(),
    byKey: new Map(),
    probes: newProbeBook(),
    routing: newRoutingState(),
    admin: newAdminState(),
    dirty: { peers: new Set(), all: false, membership: false },
    unsettled: new Set(),
    deadlines: newDeadlines(),
    timerAt: undefined,
    kexShared: newKexShared(),
  };
}

export function step(st: EngineState, input: EngineInput, now: number): StepResult {
  const fx: EngineEffect[] = [];
  switch (input.type) {
    case "joined":
      onJoined(st, input.response, input.existing, now);
      break;
    case "event":
      if (st.self) onEvent(st, input.event, now, fx);
      break;
    case "resync":
      if (st.self) onResync(st, input.peers, now, new Set(input.newer));
      break;
    case "probeReceived": {
      // Rejected or nothing new: no reconcile (the pong, if any, is in fx).
      if (!st.self || !st.admin.active) return { state: st, effects: fx };
      const ps = receiveProbe(st, input.from, input.bytes, now, fx);
      if (!ps) return { state: st, effects: fx };
      st.dirty.peers.add(ps.peer.id);
      break;
    }
    case "stats": {
      let any = false;
      for (const s of input.stats) {
        const ps = st.byKey.get(s.publicKey);
        if (ps && noteStats(ps, s, now)) {
          st.dirty.peers.add(ps.peer.id);
          any = true;
        }
      }
      // Nothing moved: deadlines are the timer's business.
      if (!any) return { state: st, effects: fx };
      break;
    }
    case "timer":
      st.timerAt = undefined;
      break;
    case "netcheck":
      st.netcheck = mergeNetcheck(st.netcheck, input.report, { periodic: true });
      migrateIfChanged(st, now, fx);
      break;
    case "addressesChanged":
      // With the netcheck made after the change, one migration covers both
      // (two would mean two updateSelf and two restarts toward every peer).
      if (input.netcheck) st.netcheck = mergeNetcheck(st.netcheck, input.netcheck);
      st.addresses = [...input.addresses];
      migrateIfChanged(st, now, fx);
      break;
    case "backendActive":
      if (setAdmin(st.admin, { switchedOn: input.active }, now)) {
        fx.push(log("info", input.active ? "tunnel switched on: resuming" : "tunnel switched off: pausing"));
        if (input.active) resume(st, now);
      }
      break;
    case "kexRotate":
      for (const ps of st.peers.values())
        if (input.peer === undefined || input.peer === ps.peer.id || input.peer === ps.peer.name) {
          kexRotateNow(ps, now);
          st.dirty.peers.add(ps.peer.id);
        }
      break;
    case "adminPause":
      if (setAdmin(st.admin, { paused: input.paused }, now)) {
        fx.push(log("info", input.paused ? "paused by an admin" : "resumed by an admin"));
        if (!input.paused) resume(st, now);
      }
      break;
    default: {
      const never: never = input;
      throw new Error(`unknown engine input ${JSON.stringify(never)}`);
    }
  }
  if (st.self) reconcile(st, now, fx);
  return { state: st, effects: fx };
}

/** Back from a pause: the backend may have lost everything; apply all again and start over. */
function resume(st: EngineState, now: number): void {
  for (const ps of st.peers.values()) {
    ps.applied.entry = undefined;
    ps.applied.endpoint = undefined;
    restartAttempt(st, ps, now);
  }
  st.dirty.all = true;
  st.dirty.membership = true;
}
