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
import { checkInterfaceName } from "../../src/core/names.js";
import { shortKey } from "../../src/crypto/keys.js";
import { backendError, peerStatsOf, retriggerPeer, type WgControl } from "../../src/wireguard/control.js";
import {
  describeChange,
  isEmptyPlan,
  normalizeDesired,
  planDevice,
  planLink,
} from "../../src/wireguard/diff.js";
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
      let current = await parts.control.read();
      if (!current) {
        await parts.lifecycle.create();
        created = true;
        changes.push(`interface ${name} created (${parts.flavour})`);
        current = await parts.control.read();
        if (!current) throw new Error("interface vanished right after creation");
      }
      const plan = planDevice(current, want);
      if (!isEmptyPlan(plan)) await parts.control.write(plan, want);
      changes.push(...plan.device.map(describeChange), ...plan.peers.map(describeChange));

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
    return peerStatsOf(await (await this.partsFor(this.iface)).control.read());
  }

  /** See retriggerPeer (control.ts) for what this costs and when the core uses it. */
  async triggerHandshake(publicKey: string): Promise<void> {
    if (!this.iface) throw new ScopeError("backend", "wg: triggerHandshake before apply");
    const endpoint = await retriggerPeer(
      (await this.partsFor(this.iface)).control,
      publicKey,
      "wg",
      this.iface,
    );
    this.ctx.logger.debug(
      endpoint ? "wg: handshake triggered" : "wg: handshake trigger skipped, no endpoint",
      {
        peer: shortKey(publicKey),
        endpoint,
      },
    );
  }

  async close(options?: { remove?: boolean }): Promise<void> {
    this.linkApplied = undefined;
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
    this.cached = await this.env.parts(iface);
    this.iface = iface;
    return this.cached;
  }
}
