/**
 * The wg Backend: declarative reconcile over a control channel (UAPI or
 * wg(8)) and ip(8). apply() diffs (diff.ts) and sends only the difference,
 * so applying the same DesiredState twice sends nothing.
 *
 * What it diffs against is the device as this backend last saw it: read
 * back by stats() (the daemon polls it every few seconds) or derived from
 * its own last write (applyPlan), so adding one peer to 1 000 is one small
 * write, not a read of all 1 000 first. A write that fails against that
 * picture (the interface went away, someone changed it) is retried once
 * after a real read.
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
import { checkInterfaceName } from "../../src/core/names.js";
import { shortKey } from "../../src/crypto/keys.js";
import { backendError, peerStatsOf, retriggerPeer, type WgControl } from "../../src/wireguard/control.js";
import {
  applyPlan,
  describeChange,
  isEmptyPlan,
  normalizeDesired,
  planDevice,
  planLink,
  type Plan,
} from "../../src/wireguard/diff.js";
import type { DeviceState } from "../../src/wireguard/model.js";
import { applyLink, readLink, type Lifecycle } from "./link.js";
import type { CommandRunner, DaemonSpawner } from "../../src/exec.js";

/** Which data plane runs the interface: kernel WireGuard (wg(8)) or wireguard-go (UAPI). */
export type Flavour = "kernel" | "wireguard-go";

/** Everything that depends on the flavour and the interface name. */
export interface WgParts {
  flavour: Flavour;
  control: WgControl;
  lifecycle: Lifecycle;
}

export interface WgBackendEnv {
  runner: CommandRunner & DaemonSpawner;
  probe(): Promise<ProbeResult>;
  /** Pick the flavour for this interface (reusing a live wireguard-go) and build its parts. */
  parts(iface: string): Promise<WgParts>;
}

export class WgBackend implements Backend, HandshakeTrigger {
  readonly name = "wg";
  private iface: string | undefined;
  private cached: WgParts | undefined;
  /** The link half (name, addresses, MTU) of the last apply that made the link match. */
  private linkApplied: string | undefined;
  /** The device as last read or written; undefined when unknown (before the first read, after a failure). */
  private known: DeviceState | undefined;
  /** Counts writes, so a read that was under way during one does not replace the newer picture. */
  private writes = 0;

  constructor(
    private readonly ctx: BackendContext,
    private readonly env: WgBackendEnv,
  ) {
    // Lets stats()/close() work after a daemon restart before the first apply().
    this.iface = ctx.options.interface || undefined;
  }

  probe(): Promise<ProbeResult> {
    return this.env.probe();
  }

  async apply(desired: DesiredState): Promise<ApplyResult> {
    const name = desired.iface.name;
    const badName = checkInterfaceName(name);
    if (badName) throw new ScopeError("config", `wg: invalid interface name: ${badName}`);
    let want: DesiredState;
    try {
      want = normalizeDesired(desired);
    } catch (err) {
      throw new ScopeError("config", err instanceof Error ? err.message : String(err));
    }
    const parts = await this.partsFor(name);
    const changes: string[] = [];
    let created = false;
    try {
      const cached = this.known;
      this.known = undefined; // until this write has landed
      let done = cached && (await this.tryWrite(parts, cached, want));
      if (!done) {
        let current = await parts.control.read();
        if (!current) {
          await parts.lifecycle.create();
          created = true;
          changes.push(`interface ${name} created (${parts.flavour})`);
          current = await parts.control.read();
          if (!current) throw new Error("interface vanished right after creation");
        }
        const plan = planDevice(current, want);
        await this.write(parts, plan, want);
        done = { plan, state: applyPlan(current, plan, want) };
      }
      this.known = done.state;
      changes.push(...done.plan.device.map(describeChange), ...done.plan.peers.map(describeChange));

      // Most applies change peers only: read the link (a spawn of ip) only
      // when its desired half changed or the interface is new.
      const linkKey = JSON.stringify([name, [...want.iface.addresses].sort(), want.iface.mtu ?? null]);
      if (created || linkKey !== this.linkApplied) {
        this.linkApplied = undefined;
        const link = await readLink(this.env.runner, name);
        if (!link) throw new Error(`ip does not see ${name}`);
        const linkChanges = planLink(link, want);
        await applyLink(this.env.runner, name, linkChanges);
        changes.push(...linkChanges.map(describeChange));
        this.linkApplied = linkKey;
      }
    } catch (err) {
      throw backendError(`wg: apply to ${name} failed after ${changes.length} change(s)`, err);
    }
    if (changes.length) this.ctx.logger.info("wg: applied", { iface: name, flavour: parts.flavour, changes });
    return created ? { changes, created } : { changes };
  }

  async stats(): Promise<PeerStats[]> {
    if (!this.iface) return [];
    const parts = await this.partsFor(this.iface);
    const writes = this.writes;
    const state = await parts.control.read();
    if (writes === this.writes) this.known = state;
    return peerStatsOf(state);
  }

  /** Counted before and after, so a stats read that overlaps it in any way is not cached (stats()). */
  private async write(parts: WgParts, plan: Plan, want: DesiredState): Promise<void> {
    if (isEmptyPlan(plan)) return;
    this.writes++;
    try {
      await parts.control.write(plan, want);
    } finally {
      this.writes++;
    }
  }

  /**
   * The plan against the cached picture, written; undefined when the write
   * failed, so the caller reads the truth and plans again (the failed write
   * may have landed in part: UAPI stops at the first bad line).
   */
  private async tryWrite(
    parts: WgParts,
    cached: DeviceState,
    want: DesiredState,
  ): Promise<{ plan: Plan; state: DeviceState } | undefined> {
    const plan = planDevice(cached, want);
    try {
      await this.write(parts, plan, want);
    } catch (err) {
      this.ctx.logger.debug("wg: write against the cached device state failed, reading it", {
        error: err instanceof Error ? err.message : String(err),
      });
      return undefined;
    }
    return { plan, state: applyPlan(cached, plan, want) };
  }

  /** See retriggerPeer (control.ts) for what this costs and when the core uses it. */
  async triggerHandshake(publicKey: string, seenHandshakeMs?: number): Promise<void> {
    if (!this.iface) throw new ScopeError("backend", "wg: triggerHandshake before apply");
    const r = await retriggerPeer(
      (await this.partsFor(this.iface)).control,
      publicKey,
      "wg",
      this.iface,
      seenHandshakeMs,
    );
    const peer = shortKey(publicKey);
    if (r.triggered) this.ctx.logger.debug("wg: handshake triggered", { peer, endpoint: r.endpoint });
    else this.ctx.logger.debug(`wg: handshake trigger skipped, ${r.why}`, { peer });
  }

  async close(options?: { remove?: boolean }): Promise<void> {
    this.linkApplied = undefined;
    this.known = undefined;
    if (!options?.remove || !this.iface) return;
    const parts = await this.partsFor(this.iface);
    try {
      await parts.lifecycle.destroy();
    } catch (err) {
      throw backendError(`wg: removing ${this.iface} failed`, err);
    }
    this.ctx.logger.info("wg: interface removed", { iface: this.iface, flavour: parts.flavour });
  }

  private async partsFor(iface: string): Promise<WgParts> {
    if (this.cached && this.iface === iface) return this.cached;
    this.known = undefined;
    this.cached = await this.env.parts(iface);
    this.iface = iface;
    return this.cached;
  }
}
