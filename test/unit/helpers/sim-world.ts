/**
 * Whole joins in-process: N engines, each with a SimWg, on a SimNet, talking
 * through a fake registry that numbers events and delivers them with the
 * network's latency. The effect runner here is the unit-test twin of
 * src/daemon/runtime.ts.
 */
import { randomBytes } from "node:crypto";
import {
  createEngineState,
  engineStatus,
  step,
  anyPending,
  statsPollMs,
  type EngineEffect,
  type EngineInput,
  type EngineState,
} from "../../../src/core/engine/index.js";
import {
  computeNetcheck,
  composeCandidates,
  natInfoOf,
  type ReflectorObservation,
} from "../../../src/core/netcheck.js";
import type { Event, JoinResponse, Peer, PeerUpdate, PostMessage } from "../../../src/core/protocol.js";
import { TIMER_PROFILES, type ProfileName } from "../../../src/core/timers.js";
import { generateIdentity, generateWgKeyPair, peerIdOf } from "../../../src/crypto/keys.js";
import type { FakeClock } from "./fake-clock.js";
import { SimNet, type SimHost, type SimHostSpec } from "./simnet.js";
import { SimWg } from "./sim-wg.js";
import { identityKeyer } from "../../../src/core/probe/mac.js";

const REFLECTORS = [
  { address: "192.0.2.1", port: 8470 },
  { address: "192.0.2.1", port: 8471 },
];
const NETWORK = { name: "lab", cidr: "10.88.0.0/16", topology: "mesh" as Topology, createdAt: 0 };
type Topology = "mesh" | "tree";
export const LISTEN_PORT = 51820;
export const PROBE_PORT = 51821;

export class SimRegistry {
  readonly records = new Map<string, Peer>();
  readonly nodes = new Map<string, SimNode>();
  readonly log: Event[] = [];
  private eventId = 0;
  private nextAddress = 2;

  constructor(
    private readonly net: SimNet,
    private readonly network = NETWORK,
  ) {}

  join(
    node: SimNode,
    peer: Omit<Peer, "id" | "network" | "address" | "joinedAt" | "updatedAt">,
  ): JoinResponse {
    const now = this.net.clock.now();
    const id = peerIdOf(peer.identityKey);
    const old = this.records.get(id);
    const record: Peer = {
      ...peer,
      id,
      network: this.network.name,
      address: old?.address ?? `10.88.0.${this.nextAddress++}`,
      joinedAt: now,
      updatedAt: now,
    };
    this.records.set(id, record);
    this.nodes.set(id, node);
    const response: JoinResponse = {
      self: record,
      network: this.network,
      peers: [...this.records.values()].filter((p) => p.id !== id),
      lastEventId: this.eventId,
      registryKey: peer.identityKey,
      reflectorPorts: [8470, 8471],
    };
    this.emit({ type: "cc.ltgc.scope:peerJoin", from: "registry", body: record } as const, id);
    return structuredClone(response);
  }

  post(from: string, m: PostMessage): void {
    this.emit({ ...m, from } as Omit<Event, "id" | "network" | "ts">, from);
  }

  updateSelf(id: string, u: PeerUpdate): void {
    const r = this.records.get(id);
    if (!r) return;
    const record = { ...r, ...u, updatedAt: this.net.clock.now() } as Peer;
    this.records.set(id, record);
    this.emit({ type: "cc.ltgc.scope:peerUpdate", from: "registry", body: record } as const, id);
  }

  leave(id: string): void {
    this.records.delete(id);
    this.nodes.delete(id);
    this.emit(
      { type: "cc.ltgc.scope:peerLeave", from: "registry", body: { peerId: id, reason: "left" } } as const,
      id,
    );
  }

  private emit(partial: Omit<Event, "id" | "network" | "ts">, exclude: string): void {
    const ev = {
      ...partial,
      id: ++this.eventId,
      network: this.network.name,
      ts: this.net.clock.now(),
    } as Event;
    this.log.push(ev);
    for (const [id, node] of this.nodes) {
      if (id === exclude || (ev.to !== undefined && ev.to !== id)) continue;
      // A copy per receiver, as JSON over the wire would give: engines must never share objects.
      const event = structuredClone(ev);
      this.net.clock.setTimer(
        this.net.latencyMs,
        () => node.running && node.dispatch({ type: "event", event }),
      );
    }
  }
}

export class SimNode {
  st: EngineState;
  readonly wg: SimWg;
  readonly identity = generateIdentity();
  readonly wgKeys = generateWgKeyPair();
  readonly logs: { msg: string; at: number; fields?: Record<string, unknown> }[] = [];
  readonly posted: { at: number; message: PostMessage }[] = [];
  running = false;
  private tick: number | undefined;
  private poll: number | undefined;
  private pollAt = Infinity;

  constructor(
    readonly world: SimWorld,
    readonly host: SimHost,
    readonly profile: ProfileName,
    readonly role: "edge" | "hub" = "edge",
  ) {
    this.wg = new SimWg(world.net, host, LISTEN_PORT, this.wgKeys.publicKey);
    world.net.bind(
      host,
      PROBE_PORT,
      (from, bytes) =>
        this.running && this.dispatch({ type: "probeReceived", from, bytes: bytes as Uint8Array }),
    );
    this.st = this.freshState();
  }

  get id(): string {
    return peerIdOf(this.identity.publicKey);
  }

  private freshState(): EngineState {
    const cfg = {
      profile: TIMER_PROFILES[this.profile],
      identity: identityKeyer(this.identity),
      nonceSalt: randomBytes(4).toString("hex"),
      probePort: PROBE_PORT,
    };
    return createEngineState(cfg, this.host.addresses(), this.netcheck());
  }

  /** What netcheck would find from here: real NAT state is created, as real reflector requests would. */
  netcheck() {
    const observations: ReflectorObservation[] = REFLECTORS.flatMap((server, i) => {
      const observed = this.world.net.egress(this.host, PROBE_PORT, server);
      return observed ? [{ reflector: i as 0 | 1, server, observed, rttMs: 10 }] : [];
    });
    return computeNetcheck({ probePort: PROBE_PORT, localAddresses: this.host.addresses(), observations });
  }

  join(): void {
    this.running = true;
    const nc = this.st.netcheck;
    const candidates = composeCandidates({
      probePort: PROBE_PORT,
      localAddresses: this.host.addresses(),
      netcheck: nc,
      reported: [],
    });
    const response = this.world.registry.join(this, {
      name: this.host.name,
      identityKey: this.identity.publicKey,
      wgPublicKey: this.wgKeys.publicKey,
      listenPort: LISTEN_PORT,
      probePort: PROBE_PORT,
      candidates,
      nat: natInfoOf(nc),
      role: this.role,
    });
    this.dispatch({ type: "joined", response, existing: this.wg.stats() });
    this.pollStats();
  }

  /** A daemon restart: fresh engine state, the (fake) WireGuard device keeps running. */
  restart(): void {
    this.stopTimers();
    this.st = this.freshState();
    this.join();
  }

  /** Sees the effects of every step, before they run (a test's window into one step). */
  observe: ((effects: readonly EngineEffect[]) => void) | undefined;

  dispatch(input: EngineInput): void {
    const now = this.world.clock.now();
    const r = step(this.st, input, now);
    this.st = r.state;
    this.observe?.(r.effects);
    for (const e of r.effects) this.run(e, now);
    // A new pending peer makes a slow poll fast again (the daemon does the same).
    if (
      this.running &&
      anyPending(this.st) &&
      this.pollAt > now + TIMER_PROFILES[this.profile].statsPendingMs
    )
      this.pollStats();
  }

  private run(e: EngineEffect, now: number): void {
    switch (e.type) {
      case "sendProbe":
        this.world.net.send(this.host, PROBE_PORT, e.to, e.bytes);
        break;
      case "applyPeers":
        this.wg.apply(e.peers);
        break;
      case "triggerHandshake":
        this.wg.trigger(e.publicKey);
        break;
      case "setTimer":
        if (this.tick !== undefined) this.world.clock.clearTimer(this.tick);
        this.tick = this.world.clock.setTimer(e.delayMs, () => {
          this.tick = undefined;
          this.dispatch({ type: "timer", name: "tick" });
        });
        break;
      case "clearTimer":
        if (this.tick !== undefined) this.world.clock.clearTimer(this.tick);
        this.tick = undefined;
        break;
      case "postMessage":
        this.posted.push({ at: now, message: e.message });
        this.world.registry.post(this.id, e.message);
        break;
      case "updateSelf":
        this.world.registry.updateSelf(this.id, e.update);
        break;
      case "selfRemoved":
        this.stop();
        break;
      case "log":
        this.logs.push({ msg: e.msg, at: now, ...(e.fields ? { fields: e.fields } : {}) });
        break;
      default: {
        const never: never = e;
        throw new Error(`unhandled effect ${JSON.stringify(never)}`);
      }
    }
  }

  private pollStats(): void {
    if (this.poll !== undefined) this.world.clock.clearTimer(this.poll);
    const delay = statsPollMs(this.st);
    this.pollAt = this.world.clock.now() + delay;
    this.poll = this.world.clock.setTimer(delay, () => {
      this.dispatch({ type: "stats", stats: this.wg.stats() });
      this.pollStats();
    });
  }

  status() {
    return engineStatus(this.st);
  }

  peer(name: string) {
    return this.status().peers.find((p) => p.name === name);
  }

  leave(): void {
    this.world.registry.leave(this.id);
    this.stop();
  }

  private stopTimers(): void {
    if (this.tick !== undefined) this.world.clock.clearTimer(this.tick);
    if (this.poll !== undefined) this.world.clock.clearTimer(this.poll);
    this.tick = this.poll = undefined;
  }

  stop(): void {
    this.running = false;
    this.stopTimers();
    this.wg.stop();
  }
}

export class SimWorld {
  readonly net: SimNet;
  readonly registry: SimRegistry;
  readonly nodes: SimNode[] = [];

  constructor(
    readonly clock: FakeClock,
    latencyMs = 5,
    topology: Topology = "mesh",
  ) {
    this.net = new SimNet(clock, latencyMs);
    this.registry = new SimRegistry(this.net, { ...NETWORK, topology });
  }

  add(spec: SimHostSpec, profile: ProfileName = "fast", role: "edge" | "hub" = "edge"): SimNode {
    const node = new SimNode(this, this.net.addHost(spec), profile, role);
    this.nodes.push(node);
    return node;
  }

  private running(): SimNode[] {
    return this.nodes.filter((n) => n.running);
  }

  /** Every running node sees every other running node, and check holds for each of those peers. */
  private all(check: (p: ReturnType<SimNode["status"]>["peers"][number]) => boolean): boolean {
    const up = this.running();
    return up.every((n) => n.status().peers.length === up.length - 1 && n.status().peers.every(check));
  }

  allDirect(): boolean {
    return this.all((p) => p.path === "direct");
  }

  settled(): boolean {
    return this.all((p) => p.settled);
  }

  /**
   * Stops every node, then lets what is in flight arrive (packets and events
   * to a stopped node are dropped). The clock is not cleared: a timer still
   * pending after that belongs to something that did not stop, and
   * useFakeClock() fails the test for it.
   */
  stop(): void {
    for (const n of this.nodes) n.stop();
    this.clock.advance(this.net.latencyMs);
  }
}
