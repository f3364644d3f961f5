/**
 * Timer profiles as data (STYLE "In Scope this means"). The join engine reads
 * every duration from one of these; it has no `if (profile === ...)`.
 *
 * seed reproduces the original timeline (SEED.md): probe every 2 s, IPv6
 * first, IPv4 for silent peers at 8 s, reports at 16 s, peerConn at 20 s,
 * hub fallback at 60 s. fast treats those numbers as upper bounds and acts on
 * evidence as soon as it arrives.
 */
export type ProfileName = "fast" | "seed";

export interface TimerProfile {
  readonly name: ProfileName;
  /**
   * Gaps between probe rounds toward a pending peer; the last one repeats.
   * fast starts dense because the first probes often reach a peer before its
   * registry event does, and those are dropped unverified.
   */
  readonly probeGapsMs: readonly number[];
  /**
   * Probe gaps toward a settled peer; the last one repeats. WireGuard
   * keepalives carry liveness, probes only refresh latency: a few rounds soon
   * after settling replace the round trips measured while the join kept the
   * CPUs busy, then the last gap keeps an idle mesh cheap (fast: 60 s; at
   * 30 s, probe sends, MACs and their handling were a third of an idle
   * daemon's CPU in the 40-edge lab). Gaps of SETTLED_PROBE_GRID_MS or more
   * end on that grid, so one wake-up serves every peer due in it.
   */
  readonly settledProbeGapsMs: readonly number[];
  /** Probe IPv4 from the start (true) or only after v4FallbackMs for peers silent on IPv6 (seed). */
  readonly probeAllFamilies: boolean;
  /** Happy eyeballs: after IPv4 answers, wait this long for IPv6 before configuring IPv4. */
  readonly v6GraceMs: number;
  /** Use IPv4 for a peer that has not answered (or handshaked) on IPv6 after this long. */
  readonly v4FallbackMs: number;
  /** Move to the next WireGuard endpoint candidate when a configured one got no handshake for this long. */
  readonly handshakeTimeoutMs: number;
  /** Re-trigger a handshake toward a pending peer after these gaps (last repeats). */
  readonly retriggerGapsMs: readonly number[];
  /** Send the first report about a newcomer after this long (0: as soon as there is something to say). */
  readonly reportAfterMs: number;
  /**
   * Report only news: a WireGuard mapping the peer's record does not imply
   * (the port-shifting case, DESIGN §4), which is all a peer learns from a
   * report. false (seed): report every observation, probe source and path.
   */
  readonly reportOnlyNews: boolean;
  /** The newcomer sends peerConn at this time at the latest. */
  readonly peerConnAfterMs: number;
  /** Send peerConn as soon as every peer is settled (fast) or only at peerConnAfterMs (seed). */
  readonly peerConnWhenSettled: boolean;
  /** Give up on a direct path (settle `none`, or `hub` when a hub exists) after this long. */
  readonly directGiveUpMs: number;
  /** Give up at once-ish on pairs that cannot go direct (symmetric NAT on both sides, no common IPv6). */
  readonly hopelessGiveUpMs: number;
  /** A pair not direct goes through a hub this long after its attempt began: 0 (fast), the seed's 60 s. */
  readonly hubAfterMs: number;
  /** Tell a newcomer at once that its peerJoin was applied, so it re-triggers its handshake (DESIGN §4). */
  readonly confirmApplied: boolean;
  /**
   * Backend stats polling by the runtime: while something is pending; once
   * all is settled but some peer is not direct (a WireGuard handshake of
   * its own, every 5 s, can make it direct: seen only at the next read);
   * and once every peer is direct.
   */
  readonly statsPendingMs: number;
  readonly statsIndirectMs: number;
  readonly statsSettledMs: number;
}

export const TIMER_PROFILES: Readonly<Record<ProfileName, TimerProfile>> = {
  fast: {
    name: "fast",
    probeGapsMs: [100, 200, 400, 800, 1000],
    settledProbeGapsMs: [1_000, 2_000, 4_000, 60_000],
    probeAllFamilies: true,
    v6GraceMs: 30,
    v4FallbackMs: 2_000,
    handshakeTimeoutMs: 2_500,
    retriggerGapsMs: [500, 1_000, 2_000, 4_000, 8_000],
    reportAfterMs: 0,
    reportOnlyNews: true,
    peerConnAfterMs: 20_000,
    peerConnWhenSettled: true,
    directGiveUpMs: 15_000,
    hopelessGiveUpMs: 0,
    hubAfterMs: 0,
    confirmApplied: true,
    // A handshake is only seen at the next read: while something is pending,
    // read often (a UAPI get or a `wg show dump` costs a few ms).
    statsPendingMs: 50,
    statsIndirectMs: 1_000,
    statsSettledMs: 5_000,
  },
  seed: {
    name: "seed",
    probeGapsMs: [2_000],
    settledProbeGapsMs: [2_000],
    probeAllFamilies: false,
    v6GraceMs: 0,
    v4FallbackMs: 8_000,
    handshakeTimeoutMs: 8_000,
    retriggerGapsMs: [5_000],
    reportAfterMs: 16_000,
    reportOnlyNews: false,
    peerConnAfterMs: 20_000,
    peerConnWhenSettled: false,
    directGiveUpMs: 60_000,
    hopelessGiveUpMs: 60_000,
    hubAfterMs: 60_000,
    confirmApplied: false,
    statsPendingMs: 250,
    statsIndirectMs: 5_000,
    statsSettledMs: 5_000,
  },
};

/** The i-th gap of a schedule; the last gap repeats forever. */
export const gapAt = (gaps: readonly number[], i: number): number =>
  gaps[Math.min(i, gaps.length - 1)] ?? 1_000;

/** WireGuard's REJECT_AFTER_TIME: a handshake older than this no longer proves a live session. */
export const HANDSHAKE_FRESH_MS = 180_000;
/** Keepalive configured on every peer so NAT mappings stay open (WireGuard's usual advice). */
export const PERSISTENT_KEEPALIVE_S = 25;

/*
 * Engine constants that do not differ between profiles. Every duration the
 * core uses is here or in a profile above (protocol.ts keeps the registry's
 * SIGNATURE_WINDOW_MS beside the signing rules it belongs to).
 */

/** A peer settled without a direct path gets this many handshake timeouts per endpoint (fast: 10 s, not 2.5 s). */
export const SETTLED_TRY_FACTOR = 4;
/** WireGuard (and some backends) report handshake times in whole seconds: allow the rounding. */
export const HANDSHAKE_SLACK_MS = 1_000;
/**
 * An apply may land this long after the engine made it (a serial backend
 * worker, a slow wg(8)): WireGuard at an endpoint we named within this time
 * is our doing; later, it is WireGuard roaming there by itself.
 */
export const APPLY_LANDING_MS = 2_000;
/** Retrigger gap toward a peer already settled as not direct: keepalives do most of the work. */
export const SETTLED_RETRIGGER_MS = 30_000;
/** Long settled probe gaps end on a multiple of this (engine clock), so rounds toward many peers share a wake-up. */
export const SETTLED_PROBE_GRID_MS = 5_000;
/** An unanswered ping is forgotten after this long. */
export const PING_TTL_MS = 10_000;
/** Accepted probe clock skew, unless the config says otherwise. */
export const PROBE_WINDOW_MS = 30_000;
/** Outstanding pings and seen nonces are pruned at most this often (not on every input). */
export const PROBE_PRUNE_EVERY_MS = 1_000;
/** IPv6 wins over IPv4 unless its probe round trip is slower by more than this. */
export const V6_RTT_ALLOWANCE_MS = 10;
/**
 * With a hub carrying a pair's traffic, both sides move to the direct path
 * together, this long after the first of them saw the handshake that proved
 * it (engine/paths.ts upgradeAt; the other hears the time in an upgrade
 * probe). WireGuard's allowed IPs filter what comes in as well as what goes
 * out, so whichever side moves first drops what the other still sends
 * through the hub: the two applies must land close together. Right after a
 * join a daemon is busy (applies, netcheck, its first reports) and an apply
 * took 126 ms to land in the lab against 30 ms on the idle side; a second
 * later both are idle.
 */
export const UPGRADE_AFTER_HANDSHAKE_MS = 1_000;

/** How long the shortest round trip's clock-offset sample is kept before a longer one may replace it (probing.ts noteClock). */
export const CLOCK_SAMPLE_TTL_MS = 60_000;

/** A direct pair with a hub behind it probes at least this often, so a broken direct path is noticed. */
export const DIRECT_CHECK_MS = 1_000;
/** No probe answer for this long on a direct path that had answers: it is gone, traffic returns to the hub. */
export const DIRECT_SILENT_MS = 3_000;
/** A probe round trip is the lowest of this many recent answers: it follows the path, not a busy moment. */
export const RTT_SAMPLES = 4;
/**
 * Hub fail-over (engine/routing.ts). An edge with a standby hub probes its
 * hubs every DIRECT_CHECK_MS; a hub that answered and then stayed silent
 * this long is dead and the edge moves to its standby (the budget is
 * 5 s: up to this, plus one apply and the registry's round trip for the
 * announcement in a tree).
 */
export const HUB_SILENT_MS = 3_000;
/**
 * For this long after its join an edge still moves to a clearly faster hub
 * (probe round trips are still coming in); after that it moves only when its
 * hub fails, so a hub that returns never pulls edges back (no flapping).
 */
export const HUB_PICK_MS = 10_000;
/** Clearly faster: at most half the round trip of the current hub and this much less. */
export const HUB_MARGIN_MS = 10;
