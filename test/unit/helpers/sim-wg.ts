/**
 * A fake WireGuard device on the SimNet with the behaviours the join
 * strategy depends on: a handshake from an unknown key is dropped; the
 * initiator retries only after 5 s unless triggered; a new peer with a
 * keepalive handshakes at once; roaming: the endpoint follows the source of
 * authenticated packets.
 */
import type { DesiredPeer, PeerStats } from "../../../src/core/backend.js";
import { formatEndpoint, parseEndpoint } from "../../../src/core/ip.js";
import type { Endpoint } from "../../../src/core/protocol.js";
import type { SimHost, SimNet } from "./simnet.js";

const REKEY_TIMEOUT_MS = 5_000;
const REKEY_ATTEMPT_MS = 90_000;

type WgMsg = { wg: "init" | "resp" | "keepalive"; from: string };

interface WgPeer {
  endpoint: Endpoint | undefined;
  allowedIps: string[];
  lastHandshakeMs: number | undefined;
  retry: number | undefined;
  attemptsSince: number | undefined;
}

export class SimWg {
  readonly peers = new Map<string, WgPeer>();
  applies = 0;
  /** Every endpoint ever configured by apply(), to catch useless ones. */
  readonly configured = new Set<string>();
  initiations = 0;
  private stopped = false;

  constructor(
    private readonly net: SimNet,
    private readonly host: SimHost,
    readonly port: number,
    readonly publicKey: string,
  ) {
    net.bind(host, port, (from, payload) => this.receive(from, payload as WgMsg));
  }

  apply(desired: DesiredPeer[]): string[] {
    this.applies++;
    const changes: string[] = [];
    const want = new Set(desired.map((d) => d.publicKey));
    for (const [k, p] of this.peers) {
      if (!want.has(k)) {
        this.stopRetry(p);
        this.peers.delete(k);
        changes.push(`remove ${k}`);
      }
    }
    for (const d of desired) {
      if (d.endpoint) this.configured.add(d.endpoint);
      const ep = d.endpoint ? parseEndpoint(d.endpoint) : undefined;
      let p = this.peers.get(d.publicKey);
      if (!p) {
        p = {
          endpoint: ep,
          allowedIps: d.allowedIps,
          lastHandshakeMs: undefined,
          retry: undefined,
          attemptsSince: undefined,
        };
        this.peers.set(d.publicKey, p);
        changes.push(`add ${d.publicKey}`);
        if (ep) this.initiate(d.publicKey);
      } else {
        if (d.endpoint !== (p.endpoint && formatEndpoint(p.endpoint)))
          changes.push(`endpoint ${d.publicKey} ${d.endpoint}`);
        if (ep) p.endpoint = ep;
        p.allowedIps = d.allowedIps;
      }
    }
    return changes;
  }

  trigger(publicKey: string): void {
    this.initiate(publicKey);
  }

  stats(): PeerStats[] {
    return [...this.peers].map(([publicKey, p]) => ({
      publicKey,
      ...(p.endpoint ? { endpoint: formatEndpoint(p.endpoint) } : {}),
      ...(p.lastHandshakeMs !== undefined ? { lastHandshakeMs: p.lastHandshakeMs } : {}),
      rxBytes: 0,
      txBytes: 0,
    }));
  }

  /** The device goes: no more retries, and what arrives from now on is dropped (nothing answers). */
  stop(): void {
    this.stopped = true;
    for (const p of this.peers.values()) this.stopRetry(p);
  }

  /** A new device with the same key and port (the host came back): no peers until the next apply. */
  resume(): void {
    this.peers.clear();
    this.stopped = false;
  }

  private initiate(publicKey: string): void {
    const p = this.peers.get(publicKey);
    if (!p?.endpoint || this.stopped) return;
    const now = this.net.clock.now();
    p.attemptsSince ??= now;
    this.initiations++;
    this.send(p.endpoint, "init");
    this.stopRetry(p);
    if (now - p.attemptsSince < REKEY_ATTEMPT_MS) {
      p.retry = this.net.clock.setTimer(REKEY_TIMEOUT_MS, () => {
        p.retry = undefined;
        this.initiate(publicKey);
      });
    }
  }

  private receive(from: Endpoint, msg: WgMsg): void {
    if (this.stopped) return;
    const p = this.peers.get(msg.from);
    if (!p) return; // unknown key: dropped, as WireGuard does
    p.endpoint = from;
    const now = this.net.clock.now();
    switch (msg.wg) {
      case "init":
        this.send(from, "resp");
        break;
      case "resp":
        this.done(p, now);
        this.send(from, "keepalive");
        break;
      case "keepalive":
        this.done(p, now);
        break;
    }
  }

  private done(p: WgPeer, now: number): void {
    p.lastHandshakeMs = now;
    p.attemptsSince = undefined;
    this.stopRetry(p);
  }

  private stopRetry(p: WgPeer): void {
    if (p.retry !== undefined) this.net.clock.clearTimer(p.retry);
    p.retry = undefined;
  }

  private send(to: Endpoint, kind: WgMsg["wg"]): void {
    this.net.send(this.host, this.port, to, { wg: kind, from: this.publicKey } satisfies WgMsg);
  }
}
