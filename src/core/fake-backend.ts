/**
 * A Backend without a system behind it, for tests and the daemon simulator
 * (test/unit/helpers/daemon-world.ts): it records every desired state it is
 * given (as values and as readable text, never a secret), every handshake
 * trigger and the close, and reports stats from a pluggable device, e.g. the
 * simulated WireGuard of test/unit/helpers/sim-wg.ts. Without a device it
 * reports the applied peers as they were configured, never handshaken.
 *
 * It can also be paused like a NetworkManager connection (setActive), for
 * tests of the daemon following the user.
 */
import type {
  ActiveStateSource,
  ApplyResult,
  Backend,
  BackendName,
  DesiredPeer,
  DesiredState,
  HandshakeTrigger,
  PeerStats,
  ProbeResult,
} from "./backend.js";

/** What stands behind the fake: a simulated WireGuard device. */
export interface FakeDevice {
  /** Makes the device's peers match; returns human-readable changes. */
  apply(peers: DesiredPeer[]): string[];
  stats(): PeerStats[];
  trigger(publicKey: string): void;
  /** The interface goes (close with remove). */
  stop?(): void;
}

export interface FakeBackendOptions {
  name?: BackendName;
  device?: FakeDevice;
}

/** One line per peer, keys shortened, endpoints and allowed IPs as given; the private key never appears. */
export function describeDesired(d: DesiredState): string {
  const i = d.iface;
  const head = `${i.name} listen ${i.listenPort} addresses ${i.addresses.join(",") || "-"}${i.mtu ? ` mtu ${i.mtu}` : ""}`;
  const peers = [...d.peers]
    .sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0))
    .map(
      (p) =>
        `  peer ${p.publicKey.slice(0, 8)} endpoint ${p.endpoint ?? "-"} allowed ${p.allowedIps.join(",") || "-"}` +
        (p.persistentKeepalive ? ` keepalive ${p.persistentKeepalive}` : "") +
        (p.presharedKey ? " psk" : ""),
    );
  return [head, ...peers].join("\n");
}

export class FakeBackend implements Backend, HandshakeTrigger, ActiveStateSource {
  readonly name: BackendName;
  /** Every desired state given to apply(), in order (copies). */
  readonly applies: DesiredState[] = [];
  /** Public keys of every triggerHandshake(), in order. */
  readonly triggers: string[] = [];
  /** How close() was called, once it was. */
  closed: { remove: boolean } | undefined;
  /** The next apply() rejects with this (then it is cleared). */
  failNextApply: Error | undefined;
  private readonly device: FakeDevice | undefined;
  private readonly listeners = new Set<(active: boolean) => void>();
  private exists = false;
  private active = true;

  constructor(o: FakeBackendOptions = {}) {
    this.name = o.name ?? "fake";
    this.device = o.device;
  }

  /** The last applied state, or undefined before the first apply. */
  get last(): DesiredState | undefined {
    return this.applies[this.applies.length - 1];
  }

  /** The applies as readable text (describeDesired), one entry each. */
  get log(): string[] {
    return this.applies.map(describeDesired);
  }

  probe(): Promise<ProbeResult> {
    return Promise.resolve({ usable: true, detail: "fake" });
  }

  apply(desired: DesiredState): Promise<ApplyResult> {
    const err = this.failNextApply;
    if (err) {
      this.failNextApply = undefined;
      return Promise.reject(err);
    }
    const before = this.last;
    this.applies.push(structuredClone(desired));
    const created = !this.exists;
    this.exists = true;
    const changes = this.device
      ? this.device.apply(desired.peers)
      : diffPeers(before?.peers ?? [], desired.peers);
    return Promise.resolve({ changes, ...(created ? { created } : {}) });
  }

  stats(): Promise<PeerStats[]> {
    if (!this.exists) return Promise.resolve([]);
    if (this.device) return Promise.resolve(this.device.stats());
    return Promise.resolve(
      (this.last?.peers ?? []).map((p) => ({
        publicKey: p.publicKey,
        ...(p.endpoint ? { endpoint: p.endpoint } : {}),
        rxBytes: 0,
        txBytes: 0,
      })),
    );
  }

  triggerHandshake(publicKey: string): Promise<void> {
    this.triggers.push(publicKey);
    this.device?.trigger(publicKey);
    return Promise.resolve();
  }

  close(options?: { remove?: boolean }): Promise<void> {
    const remove = options?.remove === true;
    this.closed = { remove };
    if (remove) {
      this.exists = false;
      this.device?.stop?.();
    }
    return Promise.resolve();
  }

  onActiveChange(listener: (active: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The user switches the tunnel off (false) or on (true) outside Scope. */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    for (const l of [...this.listeners]) l(active);
  }
}

function diffPeers(before: readonly DesiredPeer[], after: readonly DesiredPeer[]): string[] {
  const old = new Map(before.map((p) => [p.publicKey, p]));
  const now = new Set(after.map((p) => p.publicKey));
  const changes: string[] = [];
  for (const p of before) if (!now.has(p.publicKey)) changes.push(`remove ${p.publicKey.slice(0, 8)}`);
  for (const p of after) {
    const o = old.get(p.publicKey);
    if (!o) changes.push(`add ${p.publicKey.slice(0, 8)}`);
    else if (p.endpoint !== undefined && p.endpoint !== o.endpoint)
      changes.push(`endpoint ${p.publicKey.slice(0, 8)} ${o.endpoint ?? "-"} => ${p.endpoint}`);
  }
  return changes;
}

// Compile-time check: the fake offers everything a backend can.
const _check: Backend & HandshakeTrigger & ActiveStateSource = new FakeBackend();
void _check;
