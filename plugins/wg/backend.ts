/**
 * The wg Backend: declarative reconcile over a control channel (UAPI or
 * wg(8)) and ip(8). apply() reads, diffs (diff.ts) and sends only the
 * difference, so applying the same DesiredState twice sends nothing.
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
import { shortKey } from "../../src/crypto/keys.js";
import type { WgControl } from "./control.js";
import { describeChange, isEmptyPlan, normalizeDesired, planDevice, planLink } from "./diff.js";
import { applyLink, readLink, type Lifecycle } from "./link.js";
import type { Flavour } from "./model.js";
import type { CommandRunner, DaemonSpawner } from "../../src/exec.js";

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

/** Linux IFNAMSIZ minus the NUL; and no "/" since the name becomes a socket path. */
const IFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

const fail = (message: string, cause: unknown): ScopeError =>
  new ScopeError("backend", `${message}: ${cause instanceof Error ? cause.message : String(cause)}`, {
    cause,
  });

export class WgBackend implements Backend, HandshakeTrigger {
  readonly name = "wg";
  private iface: string | undefined;
  private cached: WgParts | undefined;

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
    if (!IFACE_NAME.test(name))
      throw new ScopeError("config", `invalid interface name ${JSON.stringify(name)}`);
    let want: DesiredState;
    try {
      want = normalizeDesired(desired);
    } catch (err) {
      throw new ScopeError("config", err instanceof Error ? err.message : String(err));
    }
    const parts = await this.partsFor(name);
    const changes: string[] = [];
    try {
      let current = await parts.control.read();
      if (!current) {
        await parts.lifecycle.create();
        changes.push(`interface ${name} created (${parts.flavour})`);
        current = await parts.control.read();
        if (!current) throw new Error("interface vanished right after creation");
      }
      const plan = planDevice(current, want);
      if (!isEmptyPlan(plan)) await parts.control.write(plan, want);
      changes.push(...plan.device.map(describeChange), ...plan.peers.map(describeChange));

      const link = await readLink(this.env.runner, name);
      if (!link) throw new Error(`ip does not see ${name}`);
      const linkChanges = planLink(link, want);
      await applyLink(this.env.runner, name, linkChanges);
      changes.push(...linkChanges.map(describeChange));
    } catch (err) {
      throw fail(`wg: apply to ${name} failed after ${changes.length} change(s)`, err);
    }
    if (changes.length) this.ctx.logger.info("wg: applied", { iface: name, flavour: parts.flavour, changes });
    return { changes };
  }

  async stats(): Promise<PeerStats[]> {
    if (!this.iface) return [];
    const state = await (await this.partsFor(this.iface)).control.read();
    return (state?.peers ?? []).map((p) => ({
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      lastHandshakeMs: p.lastHandshakeMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    }));
  }

  /**
   * Re-creates the peer with its live config (learned endpoint included) so
   * WireGuard sends an initiation now instead of after its 5 s rate limit.
   * Costs the peer's current session and resets its rx/tx counters, so the
   * core calls it only for a peer that has no working session yet.
   */
  async triggerHandshake(publicKey: string): Promise<void> {
    if (!this.iface) throw new ScopeError("backend", "wg: triggerHandshake before apply");
    const parts = await this.partsFor(this.iface);
    const peer = (await parts.control.read())?.peers.find((p) => p.publicKey === publicKey);
    if (!peer) throw new ScopeError("not_found", `wg: no peer ${shortKey(publicKey)} on ${this.iface}`);
    if (!peer.endpoint) {
      // Nothing to send to: the peer will initiate, or a later apply brings an endpoint.
      this.ctx.logger.debug("wg: handshake trigger skipped, no endpoint", { peer: shortKey(publicKey) });
      return;
    }
    try {
      await parts.control.retrigger(peer);
    } catch (err) {
      throw fail(`wg: handshake trigger for ${shortKey(publicKey)} failed`, err);
    }
    this.ctx.logger.debug("wg: handshake triggered", { peer: shortKey(publicKey), endpoint: peer.endpoint });
  }

  async close(options?: { remove?: boolean }): Promise<void> {
    if (!options?.remove || !this.iface) return;
    const parts = await this.partsFor(this.iface);
    try {
      await parts.lifecycle.destroy();
    } catch (err) {
      throw fail(`wg: removing ${this.iface} failed`, err);
    }
    this.ctx.logger.info("wg: interface removed", { iface: this.iface, flavour: parts.flavour });
  }

  private async partsFor(iface: string): Promise<WgParts> {
    if (this.cached && this.iface === iface) return this.cached;
    this.cached = await this.env.parts(iface);
    this.iface = iface;
    return this.cached;
  }
}
