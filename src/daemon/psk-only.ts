/**
 * PSK-only mode (`scope psk --interface wg0`): post-quantum PSK rotation for
 * the peers of a WireGuard interface that another tool set up (wg-quick,
 * NetworkManager, networkd, plain wg). Scope touches nothing but each peer's
 * preshared-key: no endpoint, no allowed IP, no key, no link.
 *
 * It runs the engine's kex slice (src/core/engine/kex.ts) unchanged, over a
 * mesh made up from the interface itself: peers are matched by WireGuard
 * public key, and a peer's id is derived from that key, so both ends name
 * each other alike without a registry. Every other engine effect (probes,
 * applies, reports) is dropped.
 *
 * Transport: UDP inside the tunnel, to the peer's first single-address
 * allowed IP (a /32 or /128) on the same port at both ends. WireGuard's
 * cryptokey routing authenticates the sender: a packet from that address
 * came through that peer's session. Each message also carries the sender's
 * Ed25519 identity key (made once, kept in the state dir), learned on first
 * sight and pinned from then on; the kex messages are signed with it as on a
 * mesh, so a replay or a changed byte is refused the same way.
 */
import { createSocket, type Socket } from "node:dgram";
import { createHash } from "node:crypto";
import { z } from "zod";
import { systemClock, preciseClock, type Clock, type TimerId } from "../core/clock.js";
import { createEngineState, step, type EngineEffect, type EngineState } from "../core/engine/index.js";
import { identityKeyer } from "../core/probe/mac.js";
import { Key32, KexBody, type Event, type Peer } from "../core/protocol.js";
import { TIMER_PROFILES } from "../core/timers.js";
import { randomBytes } from "node:crypto";
import type { Identity } from "../crypto/keys.js";
import { shortKey } from "../crypto/keys.js";
import type { CommandRunner } from "../exec.js";
import type { Logger } from "../log.js";
import type { DeviceState } from "../wireguard/model.js";
import { WgToolControl } from "../wireguard/wgtool.js";

const NETWORK = { name: "psk-only", cidr: "0.0.0.0/0", topology: "mesh" as const, createdAt: 0 };
const STATS_EVERY_MS = 5_000;

/** One UDP datagram: the sender's keys and one kex body. */
const Datagram = z.strictObject({
  v: z.literal(1),
  wgPublicKey: Key32,
  identityKey: Key32,
  body: KexBody,
});

export interface PskOnlyDeps {
  iface: string;
  /** UDP port inside the tunnel, the same at both ends. */
  port: number;
  intervalMs: number;
  identity: Identity;
  runner: CommandRunner;
  logger: Logger;
  clock?: Clock;
}

/** A peer id from a WireGuard key: both ends compute it alike. */
const idOf = (wgPublicKey: string): string =>
  createHash("sha256").update(Buffer.from(wgPublicKey, "base64")).digest("hex").slice(0, 16);

/** The peer's one tunnel address, if it has a single-address allowed IP. */
const tunnelAddress = (allowed: string[]): string | undefined =>
  allowed.find((c) => c.endsWith("/32") || c.endsWith("/128"))?.replace(/\/\d+$/, "");

function record(wgPublicKey: string, identityKey: string, address: string): Peer {
  return {
    id: idOf(wgPublicKey),
    network: NETWORK.name,
    name: shortKey(wgPublicKey),
    identityKey,
    wgPublicKey,
    listenPort: 1,
    probePort: 1,
    candidates: [],
    nat: { mapping: "unknown", ipv6: false },
    role: "edge",
    address: address.includes(":") ? "0.0.0.0" : address,
    joinedAt: 0,
    updatedAt: 0,
  };
}

export class PskOnly {
  private st!: EngineState;
  private sock: Socket | undefined;
  private readonly clock: Clock;
  private readonly timers = new Map<string, TimerId>();
  private readonly control: WgControlLike;
  /** Per peer: its tunnel address, the identity key pinned for it, the PSK it had before Scope, what we wrote last. */
  private readonly peers = new Map<
    string,
    {
      address: string;
      identityKey: string | undefined;
      original: string | undefined;
      written: string | undefined;
    }
  >();
  private stopped = false;

  constructor(private readonly d: PskOnlyDeps) {
    this.clock = d.clock ?? systemClock;
    this.control = new WgToolControl(d.runner, d.iface);
  }

  async start(): Promise<void> {
    const dev = await this.control.read();
    if (!dev?.privateKey) throw new Error(`${this.d.iface}: no such WireGuard interface, or no private key`);
    const { publicKey } = await import("../crypto/keys.js").then((m) =>
      m.wgKeyPairFromPrivate(dev.privateKey as string),
    );
    this.st = createEngineState(
      {
        profile: TIMER_PROFILES.fast,
        identity: identityKeyer(this.d.identity),
        nonceSalt: randomBytes(4).toString("hex"),
        probePort: 1,
        kex: { intervalMs: this.d.intervalMs, random: (n) => randomBytes(n) },
      },
      [],
      undefined,
    );
    const self = record(publicKey, this.d.identity.publicKey, "0.0.0.0");
    const peers: Peer[] = [];
    for (const p of dev.peers) {
      const address = tunnelAddress(p.allowedIps);
      if (!address) {
        this.d.logger.warn("psk-only: peer has no single-address allowed IP; skipped", {
          peer: shortKey(p.publicKey),
        });
        continue;
      }
      this.peers.set(idOf(p.publicKey), {
        address,
        identityKey: undefined,
        original: p.presharedKey,
        written: p.presharedKey,
      });
      // The identity key is unknown until its first message; its own key stands in (no signature verifies against it).
      peers.push(record(p.publicKey, this.d.identity.publicKey, address));
    }
    this.sock = createSocket({ type: peers.some((p) => p.address.includes(":")) ? "udp6" : "udp4" });
    this.sock.on("message", (msg, rinfo) => this.receive(msg, rinfo.address));
    await new Promise<void>((resolve, reject) => {
      this.sock?.once("error", reject);
      this.sock?.bind(this.d.port, () => resolve());
    });
    this.d.logger.info("psk-only: rotating PSKs", {
      iface: this.d.iface,
      peers: peers.length,
      port: this.d.port,
    });
    const response = {
      self,
      network: NETWORK,
      peers,
      lastEventId: 0,
      registryKey: self.identityKey,
      reflectorPorts: [1, 2] as [number, number],
    };
    this.dispatch({ type: "joined", response, existing: [] });
    this.pollStats();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) this.clock.clearTimer(t);
    this.timers.clear();
    this.sock?.close();
  }

  private dispatch(input: Parameters<typeof step>[1]): void {
    if (this.stopped) return;
    const fx = step(this.st, input, preciseClock.now()).effects;
    for (const e of fx) this.run(e);
    void this.writePsks();
  }

  private run(e: EngineEffect): void {
    switch (e.type) {
      case "postMessage":
        if (e.message.type === "cc.ltgc.scope:kex" && e.message.to) this.send(e.message.to, e.message.body);
        break;
      case "setTimer":
        this.after(e.name, e.delayMs, () => this.dispatch({ type: "timer", name: e.name }));
        break;
      case "clearTimer": {
        const t = this.timers.get(e.name);
        if (t !== undefined) this.clock.clearTimer(t);
        this.timers.delete(e.name);
        break;
      }
      case "log":
        if (e.level !== "debug") this.d.logger[e.level](e.msg, e.fields);
        break;
      default:
        // Probes, applies, reports, triggers: this mode touches nothing but PSKs.
        break;
    }
  }

  private send(to: string, body: z.infer<typeof KexBody>): void {
    const p = this.peers.get(to);
    const self = this.st.self;
    if (!p || !self || !this.sock) return;
    const msg = Buffer.from(
      JSON.stringify({ v: 1, wgPublicKey: self.wgPublicKey, identityKey: this.d.identity.publicKey, body }),
    );
    this.sock.send(msg, this.d.port, p.address);
  }

  private receive(msg: Buffer, from: string): void {
    let d: z.infer<typeof Datagram>;
    try {
      d = Datagram.parse(JSON.parse(msg.toString("utf8")));
    } catch {
      return;
    }
    const id = idOf(d.wgPublicKey);
    const p = this.peers.get(id);
    // Only the peer's own tunnel address can have sent it (WireGuard's cryptokey routing).
    if (!p || p.address !== from.replace(/^::ffff:/, "")) return;
    if (p.identityKey === undefined) {
      p.identityKey = d.identityKey;
      const ps = this.st.peers.get(id);
      if (ps) ps.peer = { ...ps.peer, identityKey: d.identityKey };
    } else if (p.identityKey !== d.identityKey) return; // pinned: another identity behind the same key is refused
    const event: Event = {
      id: 0,
      type: "cc.ltgc.scope:kex",
      network: NETWORK.name,
      from: id,
      to: this.st.self?.id,
      ts: 0,
      body: d.body,
    };
    this.dispatch({ type: "event", event });
  }

  /** PSKs the slice wants that the interface does not have yet; none: the one it had before Scope. */
  private async writePsks(): Promise<void> {
    for (const [id, p] of this.peers) {
      const ps = this.st.peers.get(id);
      if (!ps) continue;
      const want = ps.kex.psk ?? p.original;
      if (want === p.written) continue;
      p.written = want;
      const peer = {
        publicKey: ps.peer.wgPublicKey,
        allowedIps: [],
        ...(want ? { presharedKey: want } : {}),
      };
      try {
        await this.control.write(
          {
            device: [],
            peers: [{ kind: "psk", publicKey: peer.publicKey, from: "set", to: want ? "new" : "none" }],
          },
          { iface: { name: this.d.iface, privateKey: "", listenPort: 0, addresses: [] }, peers: [peer] },
        );
        this.d.logger.info("psk-only: preshared-key set", {
          peer: shortKey(peer.publicKey),
          epoch: ps.kex.epoch,
        });
      } catch (err) {
        p.written = undefined;
        this.d.logger.error("psk-only: setting a preshared-key failed", { error: (err as Error).message });
      }
    }
  }

  private pollStats(): void {
    this.after("stats", STATS_EVERY_MS, () => {
      void this.control.read().then(
        (dev: DeviceState | undefined) => {
          const stats = (dev?.peers ?? []).map((p) => ({
            publicKey: p.publicKey,
            ...(p.lastHandshakeMs !== undefined ? { lastHandshakeMs: p.lastHandshakeMs } : {}),
            rxBytes: p.rxBytes,
            txBytes: p.txBytes,
          }));
          this.dispatch({ type: "stats", stats });
        },
        () => undefined,
      );
      this.pollStats();
    });
  }

  private after(name: string, ms: number, fn: () => void): void {
    if (this.stopped) return;
    const old = this.timers.get(name);
    if (old !== undefined) this.clock.clearTimer(old);
    this.timers.set(
      name,
      this.clock.setTimer(ms, () => {
        this.timers.delete(name);
        fn();
      }),
    );
  }
}

type WgControlLike = Pick<WgToolControl, "read" | "write">;
