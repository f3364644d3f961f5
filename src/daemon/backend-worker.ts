/**
 * Serialises backend calls and coalesces them. Backend operations can be
 * slow (a UAPI round trip, a D-Bus call, a file write plus reload), and the
 * engine may ask faster than they finish; a plain queue then replays stale
 * desired states seconds late and feeds the engine stale stats. So only the
 * newest desired state is kept, triggers are a set, and one stats read
 * serves every request made while it was pending.
 *
 * Order per round: apply, then triggers (WireGuard must know a peer before
 * our handshake makes it answer), then stats.
 */
import type { Backend, DesiredState, PeerStats } from "../core/backend.js";
import { canTriggerHandshake } from "../core/backend.js";

export interface WorkerHooks {
  onApplied(changes: string[]): void;
  onStats(stats: PeerStats[]): void;
  onError(op: string, err: Error): void;
}

export class BackendWorker {
  private desired: DesiredState | undefined;
  private readonly triggers = new Set<string>();
  private statsWanted = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly backend: Backend,
    private readonly hooks: WorkerHooks,
  ) {}

  apply(desired: DesiredState): void {
    this.desired = this.desired ? mergePending(this.desired, desired) : desired;
    this.kick();
  }

  trigger(publicKey: string): void {
    if (!canTriggerHandshake(this.backend)) return;
    this.triggers.add(publicKey);
    this.kick();
  }

  stats(): void {
    this.statsWanted = true;
    this.kick();
  }

  /** Resolves when everything asked so far is done. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    this.running ??= this.loop().finally(() => (this.running = undefined));
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.desired) {
        const d = this.desired;
        this.desired = undefined;
        await this.backend.apply(d).then(
          (r) => this.hooks.onApplied(r.changes),
          (e: Error) => this.hooks.onError("apply", e),
        );
      } else if (this.triggers.size > 0) {
        const [key] = this.triggers;
        if (key === undefined) continue;
        this.triggers.delete(key);
        if (canTriggerHandshake(this.backend))
          await this.backend.triggerHandshake(key).catch((e: Error) => this.hooks.onError("trigger", e));
      } else if (this.statsWanted) {
        this.statsWanted = false;
        await this.backend.stats().then(
          (s) => this.hooks.onStats(s),
          (e: Error) => this.hooks.onError("stats", e),
        );
      } else return;
    }
  }
}

/**
 * A newer desired state replaces a pending older one, except that a peer
 * without an endpoint in the newer one means "no opinion" (the engine only
 * names endpoints it is changing): the older, never applied choice stands.
 */
export function mergePending(older: DesiredState, newer: DesiredState): DesiredState {
  const chosen = new Map(older.peers.map((p) => [p.publicKey, p.endpoint]));
  return {
    ...newer,
    peers: newer.peers.map((p) => {
      const endpoint = p.endpoint ?? chosen.get(p.publicKey);
      return endpoint === undefined ? p : { ...p, endpoint };
    }),
  };
}
