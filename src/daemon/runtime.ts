/**
 * The edge daemon: all the I/O around the pure join engine. It feeds the
 * engine (registry events, probes, backend stats, timers, address changes,
 * netcheck) and carries out its effects (probes, messages, backend apply,
 * handshake triggers). Backend calls run one at a time, in effect order, so
 * a trigger always follows the apply that configured its peer.
 *
 * Restarts lose nothing: the interface belongs to the backend and keeps
 * running; on start the engine adopts the live peers (stats) and the first
 * apply changes nothing that works.
 *
 * Lifecycle (a closed state, moved only by moveTo): starting → member →
 * stopping → stopped, or starting → stopping when a SIGTERM comes during
 * start-up. Start-up looks at it after every await and gives up at once when
 * stopping; shutdown waits for start-up to give up, then releases everything
 * in one place. Time and randomness come from the injected Clock and Random,
 * I/O through injectable seams (probe socket, netcheck, local addresses,
 * registry transport, control socket), so whole daemons run in the simulator
 * (test/unit/helpers/daemon-world.ts).
 */
import { randomBytes } from "node:crypto";
import { unlink } from "node:fs/promises";
import type { Server } from "node:net";
import { canRecreate, hasActiveState, type Backend, type DesiredInterface } from "../core/backend.js";
import {
  preciseClock,
  sleep,
  systemClock,
  systemRandom,
  type Clock,
  type Random,
  type TimerId,
} from "../core/clock.js";
import {
  anyPending,
  createEngineState,
  engineStatus,
  memberOf,
  statsPollMs,
  selfAttachment,
  selfCandidates,
  step,
  type EngineEffect,
  type EngineInput,
  type EngineState,
  type EngineStatus,
} from "../core/engine/index.js";
import { adminMode, type AdminMode } from "../core/engine/admin.js";
import { ScopeError } from "../core/errors.js";
import { parseEndpoint } from "../core/ip.js";
import { natInfoOf, type NetcheckReport } from "../core/netcheck.js";
import type { Endpoint, Event, JoinResponse, Peer, PeerUpdate } from "../core/protocol.js";
import { HANDSHAKE_FRESH_MS, TIMER_PROFILES, type TimerProfile } from "../core/timers.js";
import type { HttpTransport } from "../client/http.js";
import {
  RegistryClient,
  STREAM_CONNECT_MS,
  newStreamStats,
  type StreamStats,
} from "../client/registry-client.js";
import type { EdgeConfig } from "../config/schema.js";
import type { Identity, WgKeyPair } from "../crypto/keys.js";
import { shortKey } from "../crypto/keys.js";
import { registerSecret, type Logger } from "../log.js";
import { BackendWorker } from "./backend-worker.js";
import { listenControl, type PendingControl, type serveControl } from "./control.js";
import type { JoinState } from "./files.js";
import type { HubForwarding } from "./hub-forwarding.js";
import { localAddresses, runNetcheck, type NetcheckRunner } from "./netcheck-runner.js";
import { PathReporter } from "./path-reporter.js";
import { pingPeer } from "./ping.js";
import { Outbox, backoffMs, isRetryable } from "./outbox.js";
import { KexDirect } from "./kex-direct.js";
import { keyerAhead, type KeyerAhead } from "./pair-keys.js";
import { ProbeSocket, type ProbeTransport } from "./udp.js";
import { trustOf } from "../client/tls.js";
import { identityKeyer } from "../core/probe/mac.js";
import { notMember, type Scope1Daemon, type Scope1Export } from "./scope1-export.js";

export interface DaemonDeps {
  config: EdgeConfig;
  identity: Identity;
  wgKeys: WgKeyPair;
  join: JoinState;
  backend: Backend;
  /** Settles when a backend call made before the daemon (join --foreground's interface) is done. */
  backendBusy?: Promise<unknown>;
  /**
   * Settles when join --foreground's config and join state are on disk;
   * the control socket waits for it (callers find the daemon through the
   * config, a restart through both). A failure ends the start-up.
   */
  written?: Promise<unknown>;
  /** Where `scope status/leave/...` reach the daemon; undefined: none (the simulator). */
  controlSocket: string | undefined;
  logger: Logger;
  clock?: Clock;
  /** Reconnect jitter of the registry client (default: Math.random). */
  random?: Random;
  /** The probe socket on this port (default: a dual-stack UDP ProbeSocket). */
  probeSocket?: (port: number) => ProbeTransport;
  /** One netcheck (default: reflector requests from the probe socket, runNetcheck). */
  netcheck?: NetcheckRunner;
  /** This host's usable addresses (default: the OS's, without the tunnel interface). */
  localAddresses?: () => string[];
  /** Carries registry requests (default: node:http to config.registry.url). */
  registryTransport?: HttpTransport;
  /** What a hub turns on on its host (hub-forwarding.ts); absent: nothing (the simulator). */
  hubForwarding?: HubForwarding;
  /** Serves the daemon on the system bus (cc.ltgc.Scope1; scope1-export.ts); default none. */
  exportBus?: (d: Scope1Daemon) => Scope1Export | undefined;
}

/**
 * Where the daemon is in its life. starting: start() runs (netcheck,
 * interface, control socket, first registry round trip); member: joined,
 * engine and timers running; stopping: shutdown() releases things;
 * stopped: done resolved.
 */
export type Lifecycle = "starting" | "member" | "stopping" | "stopped";

/** The only transitions; everything else is refused by moveTo. */
const TRANSITIONS: { readonly [K in Lifecycle]: readonly Lifecycle[] } = {
  starting: ["member", "stopping"],
  member: ["stopping"],
  stopping: ["stopped"],
  stopped: [],
};

/** Addresses are re-read this often (cheap: no syscalls beyond getifaddrs); a move is noticed within this. */
const ADDRESS_POLL_MS = 1_000;
/** A NAT can change its mapping without any local change: re-check now and then. */
const NETCHECK_EVERY_MS = 60_000;
const REGISTRY_RETRY_MS = 2_000;
/** Events held while entering; past this they are dropped and the peer list read again. */
const MAX_QUEUED_EVENTS = 10_000;

export type Status = EngineStatus & {
  backend: string;
  profile: string;
  registry: "connected" | "disconnected";
  /** The registry of `url = A, B` in use: the daemon moves on only when it fails. */
  registryUrl: string;
  /** The event stream's resume point and counters (a silent stream is noticed and replaced). */
  stream: StreamStats;
  /** Kex messages through the tunnel (sent, acked, received) and through the registry (relayed, fallback). */
  kexTransport: KexDirect["counts"];
};

/** A hub's fixed public WireGuard endpoint (`scope join --endpoint`), published as a configured candidate. */
export const configuredEndpoints = (c: EdgeConfig): Endpoint[] => {
  const e = c.wireguard.endpoint === undefined ? undefined : parseEndpoint(c.wireguard.endpoint);
  return e ? [e] : [];
};

/** The interface half of a desired state, from the config; addresses come from the registry. */
export const desiredInterface = (
  c: EdgeConfig,
  privateKey: string,
  addresses: string[],
): DesiredInterface => ({
  name: c.wireguard.interface,
  privateKey,
  listenPort: c.wireguard.listen_port,
  addresses,
  ...(c.wireguard.mtu ? { mtu: c.wireguard.mtu } : {}),
});

/** The peer list of one attempt to enter (Daemon.entryRequests), with the times of its round trips. */
interface EntryRequests {
  list: Promise<Peer[]>;
  took: Record<string, number>;
}

export class Daemon implements Scope1Daemon {
  private st!: EngineState;
  /** The engine's identity; its pair keys for the first peers are made ahead (pair-keys.ts). */
  private readonly keyer: KeyerAhead;
  private readonly clock: Clock;
  private readonly random: Random;
  /** The engine's time: fractional ms by default, so probe round trips under 1 ms are seen (the registry client signs whole ms). */
  private readonly engineNow: () => number;
  /** Stops following the backend's active state (NetworkManager: the user's switch). */
  private unfollowActive: (() => void) | undefined;
  private readonly profile: TimerProfile;
  /** When the next stats poll is due (clock ms); 0 before polling starts. */
  private statsPollAt = 0;
  private readonly sock: ProbeTransport;
  private readonly client: RegistryClient;
  private readonly log: Logger;
  private phase: Lifecycle = "starting";
  /** Aborted by shutdown(): the event stream, a netcheck, a registry retry wait. */
  private readonly abort = new AbortController();
  /** start()'s work; shutdown waits for it to give up before releasing anything. */
  private startup: Promise<void> | undefined;
  private readonly timers = new Map<string, TimerId>();
  private readonly worker: BackendWorker;
  /** Relayed messages: re-sent when the registry did not take them, coalesced per subject. */
  private readonly outbox: Outbox;
  /** KEX messages through the tunnel when it is live, else (and when unacked) through the outbox. */
  private readonly kexDirect: KexDirect;
  private queued: Event[] | undefined = [];
  private control: Server | undefined;
  /** The control socket while start-up waits for the interface: listening, not yet reachable. */
  private pendingControl: Promise<PendingControl> | undefined;
  private bus: Scope1Export | undefined;
  private registryUp = false;
  private readonly streamStats = newStreamStats();
  /** Our own leave is under way: the selfRemoved it causes is expected. */
  private leaving = false;
  /** A migration netcheck is under way: address polls meanwhile wait for it. */
  private checking = false;
  /** The last updateSelf failed (registry away): re-sent when the event stream is back. */
  private selfUnsent = false;
  /** Hub forwarding as last set on the host (followRole); a change is under way while busy. */
  private forwarding: { on: boolean; busy: boolean } = { on: false, busy: false };
  /** Counts updateSelf sends: only the failure of the latest one is retried. */
  private selfGen = 0;
  private selfChain: Promise<void> = Promise.resolve();
  /** The netcheck under way: a second asker shares it (two would take each other's reflector replies). */
  private netcheckRun: Promise<NetcheckReport> | undefined;
  /** Why the peer list must be read again once a member (events dropped while entering, a list read before the stream was live). */
  private resyncDue: string | undefined;
  /**
   * One set per peer list read under way: the peers stream events told of
   * since it was asked for. The list may be older than those events (an
   * overloaded registry answers late), so it must not undo them.
   */
  private readonly listsOut = new Set<Set<string>>();
  /** Resolves at the event stream's first `ready`: a list asked for after it misses no event. */
  private streamLive!: () => void;
  private readonly live = new Promise<void>((r) => (this.streamLive = r));
  private isLive = false;
  /** enter()'s peer list, read or being read (entryList). */
  private listing: Promise<Peer[]> | undefined;
  private lastNetcheck: NetcheckReport | undefined;
  /** This daemon's path view, for the registry's web view (path-reporter.ts); set once a member. */
  private paths: PathReporter | undefined;
  /** Start-up phases, logged once a member (where a slow start goes). */
  private readonly startupMs: { netcheckMs?: number; interfaceWaitMs?: number } = {};
  private exit!: (code: number) => void;
  /** Called first thing in shutdown(), before the event stream is aborted. */
  stopping: (() => void) | undefined;
  /** Resolves with the exit code when the daemon stops by itself (leave, removal). */
  readonly done: Promise<number>;

  constructor(private readonly d: DaemonDeps) {
    this.clock = d.clock ?? systemClock;
    this.random = d.random ?? systemRandom;
    this.engineNow = d.clock ? () => this.clock.now() : () => preciseClock.now();
    this.profile = TIMER_PROFILES[d.config.daemon.timers];
    this.keyer = keyerAhead(identityKeyer(d.identity));
    this.sock = (d.probeSocket ?? ((port) => new ProbeSocket(port)))(this.probePort);
    this.client = new RegistryClient({
      url: d.config.registry.url,
      network: d.config.network.name,
      identity: d.identity,
      clock: this.clock,
      ...(d.random ? { random: d.random } : {}),
      ...(d.registryTransport ? { transport: d.registryTransport } : {}),
      tls: trustOf(d.config),
    });
    this.log = d.logger;
    this.outbox = new Outbox({
      clock: this.clock,
      random: this.random,
      post: (m) => this.client.postMessage(m),
      onDrop: (m, err, attempts) =>
        this.log.warn("message not sent", { type: m.type, to: m.to, attempts, error: err.message }),
    });
    this.kexDirect = this.newKexDirect();
    this.done = new Promise((r) => (this.exit = r));
    this.worker = new BackendWorker(
      d.backend,
      {
        onApplied: (changes) => {
          changes.forEach((change) => this.log.info("backend", { change }));
          this.followRole(); // the interface exists now
        },
        onStats: (stats) => this.dispatch({ type: "stats", stats }),
        onError: (op, err) => this.log.error(`backend ${op} failed`, { error: err.message }),
      },
      { after: d.backendBusy, clock: this.clock },
    );
  }

  get lifecycle(): Lifecycle {
    return this.phase;
  }

  /** The one place the lifecycle changes; false (and no change) for a transition that is not allowed. */
  private moveTo(next: Lifecycle): boolean {
    if (!TRANSITIONS[this.phase].includes(next)) return false;
    this.log.debug("lifecycle", { from: this.phase, to: next });
    this.phase = next;
    this.bus?.changed();
    return true;
  }

  /** Start-up goes on only while this holds; checked after every await in it. */
  private get starting(): boolean {
    return this.phase === "starting";
  }

  /** Inputs are handled and timers set only while this holds. */
  private get running(): boolean {
    return this.phase === "starting" || this.phase === "member";
  }

  private get probePort(): number {
    return this.d.config.daemon.probe_port ?? this.d.config.wireguard.listen_port + 1;
  }

  /**
   * Starts; resolves once a member, or early when shutdown() came first
   * (then `done` tells the exit code). A failure (no longer a member) stops
   * the daemon and rejects.
   */
  async start(): Promise<void> {
    if (this.startup || !this.starting) return;
    this.startup = this.startUp();
    try {
      await this.startup;
    } catch (e) {
      void this.shutdown(1, { remove: false });
      throw e;
    }
  }

  private async startUp(): Promise<void> {
    const t0 = this.clock.now();
    this.log.info("starting", {
      network: this.d.config.network.name,
      profile: this.profile.name,
      // Node start-up, imports (and, under `scope join --foreground`, the join itself) so far.
      processUpMs: Math.round(process.uptime() * 1000),
    });
    // Creating the interface (a wireguard-go start takes a few hundred ms) has
    // nothing to wait for: do it while the netcheck and the registry answer.
    // Only when no peer is live (a first start), so a restart never touches
    // a working tunnel before the engine has adopted it.
    const early = Promise.resolve(this.d.backendBusy)
      .then(() => this.d.backend.stats())
      .then(
        (live) => {
          if (live.length === 0 && this.starting) this.worker.apply({ iface: this.iface(), peers: [] });
        },
        () => undefined,
      );
    await this.sock.open();
    if (!this.starting) return;
    this.sock.onProbe = (from, bytes) => {
      if (!this.kexDirect.receive(from, bytes)) this.dispatch({ type: "probeReceived", from, bytes });
    };
    const addrs = this.localAddresses();
    const report = await this.netcheck();
    if (!this.starting) return;
    this.lastNetcheck = report;
    this.startupMs.netcheckMs = this.clock.now() - t0;
    this.st = createEngineState(
      {
        profile: this.profile,
        identity: this.keyer,
        nonceSalt: randomBytes(4).toString("hex"),
        probePort: this.probePort,
        ...(this.d.config.psk.mode === "rotate"
          ? { kex: { intervalMs: this.d.config.psk.interval * 1000, random: (n: number) => randomBytes(n) } }
          : {}),
        configured: configuredEndpoints(this.d.config),
      },
      addrs,
      this.lastNetcheck,
    );
    // The event stream and the peer list need nothing from the interface:
    // they are read while a first start's wireguard-go is still coming up.
    // Everything that answers or acts waits for it: the control socket (a
    // caller that sees our status finds the interface, 3da7c66), the engine's
    // peers, and our record update, which sets every peer probing toward us
    // (DESIGN §4: both sides at about the same time; sent earlier, at N=20
    // they burnt their first probe rounds, and the CPUs, while we were deaf).
    void this.followEvents();
    const first = this.entryRequests();
    // The listed peers' pair keys are made while we wait, not in the step that gives the engine its peers.
    void first.list.then(
      (peers) =>
        this.starting &&
        this.keyer.prepare(
          peers.map((p) => p.identityKey),
          (fn) => this.after("pair-keys", 0, fn),
        ),
      () => undefined,
    );
    // The control socket listens meanwhile too, in its nest: published (reachable) only below.
    if (this.d.controlSocket !== undefined) {
      this.pendingControl = listenControl(this.d.controlSocket, (req) => this.onControl(req));
      this.pendingControl.catch(() => undefined); // awaited below, or closed by shutdown
    }
    const early0 = this.clock.now();
    await early;
    if (!this.starting) return;
    this.startupMs.interfaceWaitMs = this.clock.now() - early0;
    // The user's switch (NetworkManager): off pauses the engine, on resumes; the daemon never overrides it.
    const backend = this.d.backend;
    if (hasActiveState(backend))
      this.unfollowActive = backend.onActiveChange((active) =>
        this.dispatch({ type: "backendActive", active }),
      );
    await this.d.written;
    if (!this.starting) return;
    const pending = this.pendingControl;
    if (pending) {
      // Released by shutdown() like everything else, even when it came meanwhile.
      this.pendingControl = undefined;
      this.control = await (await pending).publish();
      if (!this.starting) return;
    }
    this.bus = this.d.exportBus?.(this);
    if (!(await this.enter(first))) return;
    this.every("addresses", ADDRESS_POLL_MS, () => void this.checkAddresses());
    this.every("netcheck", NETCHECK_EVERY_MS, () => void this.refreshNetcheck());
    this.pollStats();
    this.paths = new PathReporter({
      clock: this.clock,
      peers: () => this.status().peers,
      send: (views) => this.client.reportPaths(views),
      onError: (err) => this.log.debug("path report not sent", { error: err.message }),
    });
    this.moveTo("member");
  }

  /** enter()'s peer list, asked for now (start-up asks before the interface exists); its time is logged since. */
  private entryRequests(): EntryRequests {
    const t0 = this.clock.now();
    const took: Record<string, number> = {};
    const list = this.entryList().finally(() => (took.listPeersMs = this.clock.now() - t0));
    // Read by enter(), unless start-up gave up first.
    list.catch(() => undefined);
    return { list, took };
  }

  /**
   * Becomes a member again: announce fresh candidates, take the peer list
   * (`first`: the one start-up asked for), adopt the live interface. The
   * three are independent: one round trip for all (the list may show our
   * old record; the engine takes `self` from the update's answer). Retries
   * while the registry is away; false when the daemon began stopping meanwhile.
   */
  private async enter(first: EntryRequests): Promise<boolean> {
    let req: EntryRequests | undefined = first;
    while (this.starting) {
      try {
        const { list, took } = req ?? this.entryRequests();
        req = undefined;
        const t1 = this.clock.now();
        const timed = <T>(what: string, p: Promise<T>): Promise<T> =>
          p.finally(() => (took[what] = this.clock.now() - t1));
        const [self, peers, existing] = await Promise.all([
          timed(
            "updateSelfMs",
            this.client.updateSelf({
              listenPort: this.d.config.wireguard.listen_port,
              probePort: this.probePort,
              candidates: selfCandidates(this.st),
              nat: natInfoOf(this.st.netcheck),
            }),
          ),
          list,
          timed(
            "statsMs",
            this.d.backend.stats().catch(() => []),
          ),
        ]);
        if (!this.starting) return false;
        const response: JoinResponse = { ...this.d.join, self, peers, lastEventId: 0 };
        this.dispatch({ type: "joined", response, existing });
        this.log.info("member of network", {
          network: response.network.name,
          address: self.address,
          peers: peers.length - 1,
          adopted: existing.length,
          ...this.startupMs,
          ...took,
        });
        const queued = this.queued ?? [];
        this.queued = undefined;
        for (const event of queued) this.dispatch({ type: "event", event });
        const due = this.resyncDue;
        this.resyncDue = undefined;
        if (due !== undefined) void this.resync(due);
        return true;
      } catch (e) {
        if (!this.starting) return false;
        if (e instanceof ScopeError && e.code === "not_found")
          throw new ScopeError("not_found", "this host is no longer a member of the network (removed?)");
        this.log.warn("registry unreachable; tunnels stay as they are, retrying", {
          error: (e as Error).message,
        });
        await sleep(this.clock, REGISTRY_RETRY_MS * (0.5 + this.random() / 2), this.abort.signal);
      }
    }
    return false;
  }

  /**
   * The peer list for enter(), asked for once the event stream is live: the
   * stream (queued meanwhile) then carries every change after the list. A
   * list read before (the stream slow to connect) would miss what changed
   * between the two, for good. A stream that is not live within
   * STREAM_CONNECT_MS does not hold the start-up up: the list is read
   * anyway and read again once the stream is live.
   */
  private entryList(): Promise<Peer[]> {
    // A list read after the stream was live stays good however long ago (the
    // queue holds every event since): an attempt that failed on its updateSelf
    // leaves it for the next one rather than asking again.
    const list = (this.listing ??= this.listAfterLive());
    list.catch(() => {
      if (this.listing === list) this.listing = undefined;
    });
    return list;
  }

  private async listAfterLive(): Promise<Peer[]> {
    if (!this.isLive) {
      // Ends when the stream is live, after STREAM_CONNECT_MS, or at once on shutdown.
      const waited = new AbortController();
      const end = () => waited.abort();
      void this.live.then(end);
      this.abort.signal.addEventListener("abort", end, { once: true });
      await sleep(this.clock, STREAM_CONNECT_MS, waited.signal);
      this.abort.signal.removeEventListener("abort", end);
      if (!this.starting) throw new ScopeError("unavailable", "the daemon is stopping");
      if (!this.isLive) this.resyncDue = "peer list read before the event stream was live";
    }
    return this.client.listPeers();
  }

  private async followEvents(): Promise<void> {
    let first = true;
    try {
      await this.client.events({
        signal: this.abort.signal,
        stats: this.streamStats,
        onEvent: (event) => {
          const about = memberOf(event);
          if (about !== undefined) for (const s of this.listsOut) s.add(about);
          if (this.queued) this.enqueue(event);
          else this.dispatch({ type: "event", event });
        },
        onReady: () => {
          this.registryUp = true;
          if (!this.isLive) {
            this.isLive = true;
            this.streamLive();
          }
          // After a reconnect, events may be gone (registry restart without history): re-read the list.
          if (!first) void this.resync("event stream reconnected");
          if (this.selfUnsent && this.st.self) {
            this.sendSelf({ candidates: this.st.self.candidates, nat: this.st.self.nat }, 0);
          }
          // The reflector lives with the registry: a netcheck made while it was away saw nothing.
          if (!this.lastNetcheck?.ipv4) void this.refreshNetcheck();
          first = false;
        },
        // While entering, the list enter() reads may be older than the lost events: read it again after.
        onResync: () =>
          this.queued ? void (this.resyncDue = "event history gone") : this.resync("event history gone"),
        onDisconnect: (err, retryInMs) => {
          this.registryUp = false;
          this.log.warn("event stream lost", { error: err.message, retryInMs });
        },
      });
    } catch (e) {
      if (!this.running) return;
      this.log.error("event stream failed for good", { error: (e as Error).message });
      if (e instanceof ScopeError && (e.code === "not_found" || e.code === "unauthorized"))
        await this.shutdown(1, { remove: false });
    }
  }

  /** Holds an event until enter() is done; bounded, since a registry may stream faster than we enter. */
  private enqueue(event: Event): void {
    if (!this.queued) return;
    if (this.queued.length < MAX_QUEUED_EVENTS) this.queued.push(event);
    else if (this.resyncDue === undefined) {
      this.resyncDue = "events dropped while entering";
      this.log.warn("too many events while entering; the peer list is read again afterwards", {
        queued: this.queued.length,
      });
    }
  }

  private async resync(why: string): Promise<void> {
    if (this.queued) return; // not joined yet: enter() reads the list anyway
    const newer = new Set<string>();
    this.listsOut.add(newer);
    try {
      const peers = await this.client.listPeers();
      if (!this.running) return;
      this.log.info("resynced peer list", {
        why,
        peers: peers.length - 1,
        ...(newer.size > 0 ? { newerByEvents: newer.size } : {}),
      });
      this.dispatch({ type: "resync", peers, newer: [...newer] });
    } catch (e) {
      this.log.warn("resync failed", { error: (e as Error).message });
    } finally {
      this.listsOut.delete(newer);
    }
  }

  /**
   * A tunnel is live for kex while WireGuard's last handshake is within its
   * session lifetime (HANDSHAKE_FRESH_MS, REJECT_AFTER_TIME): a datagram to the peer's
   * tunnel address gets through without waiting for a new handshake.
   */
  private newKexDirect(): KexDirect {
    const peer = (id: string) => (this.st ? this.st.peers.get(id) : undefined);
    return new KexDirect({
      clock: this.clock,
      sendDatagram: (to, bytes) => this.sock.send(to, bytes),
      viaRegistry: (m) => this.outbox.send(m),
      deliver: (event) => this.dispatch({ type: "event", event }),
      onFallback: (to, windowMs) =>
        this.log.debug("psk: no ack through the tunnel, kex message relayed", { to, windowMs }),
      tunnelOf: (id) => {
        const ps = peer(id);
        const lh = ps?.paths.wg.lastHandshakeMs;
        if (!ps || lh === undefined || this.engineNow() - lh > HANDSHAKE_FRESH_MS) return undefined;
        return { address: ps.peer.address, port: ps.peer.probePort };
      },
      addressesOf: (id) => {
        const p = peer(id)?.peer;
        return p ? [p.address, ...(p.address6 ? [p.address6] : [])] : [];
      },
      self: () =>
        this.st?.self && this.st.network ? { id: this.st.self.id, network: this.st.network.name } : undefined,
    });
  }

  dispatch(input: EngineInput): void {
    if (!this.st || !this.running) return;
    if (
      !this.st.self &&
      input.type !== "joined" &&
      input.type !== "addressesChanged" &&
      input.type !== "netcheck" &&
      input.type !== "backendActive" &&
      input.type !== "adminPause"
    )
      return;
    const r = step(this.st, input, this.engineNow());
    this.st = r.state;
    for (const e of r.effects) this.run(e);
    if (this.forwarding.on !== (this.st.self?.role === "hub")) this.followRole();
    // A peer that turned pending (a join, a migration) makes a slow poll fast again.
    if (anyPending(this.st) && this.statsPollAt > this.clock.now() + this.profile.statsPendingMs)
      this.pollStats();
    this.bus?.changed();
    this.paths?.changed();
  }

  /**
   * A hub forwards between its peers on its interface; an edge (or a hub
   * the admin made an edge) does not. Retried after the next apply when
   * the interface is not there yet.
   */
  private followRole(): void {
    const hf = this.d.hubForwarding;
    const want = this.st?.self?.role === "hub" && this.running;
    if (!hf || this.forwarding.busy || want === this.forwarding.on) return;
    this.forwarding.busy = true;
    const iface = this.iface().name;
    void (want ? hf.enable(iface) : hf.disable(iface))
      .then(
        () => {
          this.forwarding.on = want;
          this.log.info(want ? "hub: forwarding on" : "hub: forwarding off", { iface });
        },
        (e: Error) =>
          this.log.warn("hub: forwarding change failed, retried after the next apply", { error: e.message }),
      )
      .finally(() => (this.forwarding.busy = false));
  }

  private run(e: EngineEffect): void {
    switch (e.type) {
      case "sendProbe":
        this.sock.send(e.to, e.bytes);
        break;
      case "applyPeers":
        // Masked by value in every later log line, whatever a message interpolates.
        for (const p of e.peers) if (p.presharedKey) registerSecret(p.presharedKey);
        this.worker.apply({ iface: this.iface(), peers: e.peers });
        break;
      case "triggerHandshake":
        this.worker.trigger(e.publicKey, e.seenHandshakeMs);
        // The handshake takes one round trip: look for it soon rather than at the next poll.
        this.after("stats-soon", 60, () => this.worker.stats());
        break;
      case "setTimer":
        this.after(e.name, e.delayMs, () => this.dispatch({ type: "timer", name: e.name }));
        break;
      case "clearTimer":
        this.cancel(e.name);
        break;
      case "postMessage":
        this.kexDirect.send(e.message);
        break;
      case "updateSelf":
        this.sendSelf(e.update, 0);
        break;
      case "selfRemoved":
        if (this.leaving) break; // our own leave coming back as an event
        this.log.warn("removed from the network by the registry");
        void this.shutdown(1, { remove: true });
        break;
      case "log":
        this.log[e.level](e.msg, e.fields);
        break;
      default: {
        const never: never = e;
        throw new Error(`unhandled effect ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Sends our record. Peers must learn our candidates (a port-shifting
   * host's reported mapping is the only way to reach it), so a failure is
   * retried with a backoff, always with the current record, and again when
   * the event stream is back; a newer update supersedes a pending retry.
   */
  private sendSelf(update: PeerUpdate, attempt: number): void {
    this.selfUnsent = false;
    this.cancel("self-retry");
    const gen = ++this.selfGen;
    // One at a time, in order: two requests in flight may reach the registry
    // in either order, and the older record must never be the last one written.
    // One superseded before its turn is not sent; the newest carries the whole record.
    this.selfChain = this.selfChain.then(async () => {
      if (gen !== this.selfGen || !this.running) return;
      const self = this.st.self;
      await this.client
        .updateSelf(
          self
            ? { ...update, candidates: self.candidates, nat: self.nat, ...selfAttachment(this.st) }
            : update,
        )
        .catch((err: Error) => this.selfFailed(gen, err, attempt));
    });
  }

  private selfFailed(gen: number, err: Error, attempt: number): void {
    if (gen !== this.selfGen || !this.running) return; // a newer update went out meanwhile
    this.selfUnsent = true;
    this.log.warn("self update not sent", { error: err.message, attempt: attempt + 1 });
    if (!isRetryable(err) || !this.st.self) return;
    const delay = backoffMs(attempt, this.random);
    this.after("self-retry", delay, () => {
      const self = this.st.self;
      if (self && this.selfUnsent) this.sendSelf({ candidates: self.candidates, nat: self.nat }, attempt + 1);
    });
  }

  private iface(): DesiredInterface {
    const net = this.st?.network ?? this.d.join.network;
    const self = this.st?.self ?? this.d.join.self;
    const prefix = net.cidr.split("/")[1];
    const prefix6 = net.cidr6?.split("/")[1];
    return desiredInterface(this.d.config, this.d.wgKeys.privateKey, [
      `${self.address}/${prefix}`,
      ...(self.address6 && prefix6 ? [`${self.address6}/${prefix6}`] : []),
    ]);
  }

  private pollStats(): void {
    const delay = statsPollMs(this.st);
    this.statsPollAt = this.clock.now() + delay;
    this.after("stats", delay, () => {
      this.worker.stats();
      this.pollStats();
    });
  }

  private netcheck(): Promise<NetcheckReport> {
    this.netcheckRun ??= this.netcheckOnce().finally(() => (this.netcheckRun = undefined));
    return this.netcheckRun;
  }

  private netcheckOnce(): Promise<NetcheckReport> {
    if (this.d.netcheck) return this.d.netcheck(this.abort.signal);
    return runNetcheck(
      this.sock,
      {
        // The reflector runs with the registry: ask the one in use, not a dead first of the list.
        registryUrl: this.client.currentUrl,
        registryKey: this.d.join.registryKey,
        reflectorPorts: this.d.join.reflectorPorts,
        probePort: this.probePort,
        skipInterface: this.d.config.wireguard.interface,
      },
      { clock: this.clock, signal: this.abort.signal, localAddresses: () => this.localAddresses() },
    );
  }

  private localAddresses(): string[] {
    return this.d.localAddresses?.() ?? localAddresses(this.d.config.wireguard.interface);
  }

  /**
   * Migration detection, cheap: re-read addresses every second; only on a
   * change run a netcheck (the NAT in front may have changed too) and again
   * 2 s later, when a new router may have settled.
   */
  private async checkAddresses(): Promise<void> {
    const addresses = this.localAddresses();
    if (addresses.join() === this.st.addresses.join() || this.checking) return;
    // Mid-move (old address gone, new one not yet there): nothing to announce; the next poll sees the new one.
    if (addresses.length === 0) return;
    this.checking = true;
    try {
      this.log.info("local addresses changed", { addresses });
      // Kept-alive registry connections (and the event stream) still use the
      // old source address: drop them so everything reconnects from the new one.
      this.client.dropConnections();
      this.lastNetcheck = await this.netcheck();
      if (!this.running) return;
      this.dispatch({ type: "addressesChanged", addresses, netcheck: this.lastNetcheck });
      this.after("netcheck-again", 2_000, () => void this.refreshNetcheck());
    } finally {
      this.checking = false;
    }
  }

  private async refreshNetcheck(): Promise<void> {
    const report = await this.netcheck();
    if (!this.running) return;
    this.lastNetcheck = report;
    this.dispatch({ type: "netcheck", report: this.lastNetcheck });
  }

  status(): Status {
    return {
      ...engineStatus(this.st),
      backend: this.d.backend.name,
      profile: this.profile.name,
      registry: this.registryUp ? "connected" : "disconnected",
      registryUrl: this.client.currentUrl,
      stream: { ...this.streamStats },
      kexTransport: { ...this.kexDirect.counts },
    };
  }

  /** The admin pause (cc.ltgc.Scope1 Pause/Resume): the engine's admin slice, never the backend's switch. */
  adminPause(paused: boolean): void {
    if (this.phase !== "member") throw notMember(this.phase);
    this.dispatch({ type: "adminPause", paused });
  }

  /**
   * `scope recreate`: the user wants back what they deleted by hand (the
   * backend then reported itself switched off). That is their switch-on:
   * the engine resumes and its full re-apply makes the profile again.
   */
  async recreate(): Promise<{ backend: string }> {
    if (!canRecreate(this.d.backend))
      throw new ScopeError("usage", `the ${this.d.backend.name} backend has nothing to recreate`);
    await this.d.backend.allowRecreate();
    this.dispatch({ type: "backendActive", active: true });
    return { backend: this.d.backend.name };
  }

  adminMode(): AdminMode | undefined {
    return this.st && adminMode(this.st.admin);
  }

  tunnelAddresses(): string[] {
    return this.st?.self ? this.iface().addresses : [];
  }

  private async onControl(
    req: Parameters<Parameters<typeof serveControl>[1]>[0],
  ): Promise<Record<string, unknown>> {
    switch (req.cmd) {
      case "status":
        return { status: this.status() };
      case "netcheck":
        await this.refreshNetcheck();
        return { netcheck: this.lastNetcheck };
      case "ping": {
        const p = this.status().peers.find(
          (x) => x.name === req.peer || x.id === req.peer || x.address === req.peer,
        );
        if (!p)
          throw new ScopeError(
            "not_found",
            `no peer ${JSON.stringify(req.peer)} in ${this.d.config.network.name}`,
          );
        return { ping: { peer: p.name, address: p.address, ...(await pingPeer(p.address, req.count)) } };
      }
      case "leave":
        await this.leave();
        return {};
      case "pskRotate":
        if (!this.st.cfg.kex) throw new ScopeError("config", "PSK rotation is off ([psk] mode = off)");
        this.dispatch({ type: "kexRotate", ...(req.peer ? { peer: req.peer } : {}) });
        return {};
      case "recreate":
        return { recreate: await this.recreate() };
    }
  }

  /** Leaves the network (the registry drops our record), then stops and removes the interface. */
  async leave(): Promise<void> {
    if (!this.running) throw new ScopeError("unavailable", "the daemon is stopping");
    this.leaving = true;
    try {
      await this.client.leave();
    } catch (e) {
      this.leaving = false;
      throw e;
    }
    this.log.info("left the network");
    // After this call's answer is on its way (the control reply is written before the socket closes).
    void Promise.resolve().then(() => this.shutdown(0, { remove: true }));
  }

  /** Stops; with remove the interface goes too (leave, removal), without it keeps forwarding. */
  async shutdown(code: number, opts: { remove: boolean }): Promise<void> {
    if (!this.moveTo("stopping")) return;
    this.stopping?.();
    // Start-up gives up at its next check: its waits end (abort) and its requests fail (close).
    this.abort.abort();
    this.outbox.close();
    this.kexDirect.close();
    this.paths?.close();
    this.client.close();
    for (const id of this.timers.values()) this.clock.clearTimer(id);
    this.timers.clear();
    await this.startup?.catch(() => undefined);
    this.sock.close();
    this.unfollowActive?.();
    await this.closeControl();
    await this.bus?.close();
    this.worker.stop();
    await this.worker.idle();
    // Leaving (or removed): undo what the hub changed. A plain stop keeps the tunnel, and its forwarding.
    if (opts.remove && this.forwarding.on)
      await this.d.hubForwarding
        ?.disable(this.iface().name)
        .catch((e: Error) => this.log.warn("hub: undoing forwarding failed", { error: e.message }));
    await this.d.backend
      .close({ remove: opts.remove })
      .catch((e: Error) => this.log.error("backend close failed", { error: e.message }));
    this.log.info("stopped", { removedInterface: opts.remove, wgKey: shortKey(this.d.wgKeys.publicKey) });
    this.moveTo("stopped");
    this.exit(code);
  }

  private async closeControl(): Promise<void> {
    const pending = this.pendingControl;
    this.pendingControl = undefined;
    await pending?.then(
      (p) => p.close(),
      () => undefined,
    );
    const server = this.control;
    const path = this.d.controlSocket;
    if (!server || path === undefined) return;
    this.control = undefined;
    // No new connections; one still open (a `leave` whose answer is on its way) ends by itself.
    server.close();
    await unlink(path).catch(() => undefined);
  }

  /** Sets a named timer (replacing one of that name); none once stopping, so nothing outlives shutdown. */
  private after(name: string, ms: number, fn: () => void): void {
    if (!this.running) return;
    this.cancel(name);
    this.timers.set(
      name,
      this.clock.setTimer(ms, () => {
        this.timers.delete(name);
        fn();
      }),
    );
  }

  private every(name: string, ms: number, fn: () => void): void {
    this.after(name, ms, () => {
      fn();
      this.every(name, ms, fn);
    });
  }

  private cancel(name: string): void {
    const id = this.timers.get(name);
    if (id !== undefined) this.clock.clearTimer(id);
    this.timers.delete(name);
  }
}
