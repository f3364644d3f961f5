/**
 * Kernel WireGuard through wg(8): `wg show IFACE dump` to read, `wg set` to
 * write. wg also speaks UAPI to wireguard-go, so this channel works with
 * either data plane; the backend uses it for kernel interfaces.
 *
 * Secrets: `wg set` only takes keys as file paths. Each secret goes in its
 * own `wg set ... /dev/stdin` invocation with the key on stdin, so no key is
 * ever on argv or on disk. Clearing a PSK uses /dev/null (wg(8)).
 */
import type { DesiredState, PeerStats } from "../core/backend.js";
import { ScopeError } from "../core/errors.js";
import type { Plan } from "./diff.js";
import { peerStatsOf, retriggerPeer, type WgControl } from "./control.js";
import { canonicalCidrs, canonicalEndpoint } from "../core/ip.js";
import type { DeviceState, PeerState } from "./model.js";
import { CommandError, runChecked, type CommandRunner } from "../exec.js";

/** One wg invocation: args are public, stdin may hold one secret. */
export interface WgCommand {
  args: string[];
  stdin?: string;
}

const none = (v: string): string | undefined => (v === "(none)" ? undefined : v);

/** Parse `wg show IFACE dump` (tab-separated; first line the interface, then one line per peer). */
export function parseDump(text: string): DeviceState {
  const lines = text.split("\n").filter((l) => l !== "");
  const head = lines.shift()?.split("\t");
  if (!head || head.length < 4) throw new Error("wg show dump: missing interface line");
  const port = Number(head[2]);
  const state: DeviceState = {
    privateKey: none(head[0]!),
    listenPort: port > 0 ? port : undefined,
    peers: [],
  };
  for (const line of lines) {
    const f = line.split("\t");
    if (f.length < 8) throw new Error(`wg show dump: short peer line (${f.length} fields)`);
    const [publicKey, psk, endpoint, allowed, handshake, rx, tx, keepalive] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const ep = none(endpoint);
    const ips = none(allowed);
    state.peers.push({
      publicKey,
      presharedKey: none(psk),
      endpoint: ep && canonicalEndpoint(ep),
      allowedIps: ips ? canonicalCidrs(ips.split(",")) : [],
      persistentKeepalive: keepalive === "off" ? 0 : Number(keepalive),
      lastHandshakeMs: Number(handshake) > 0 ? Number(handshake) * 1000 : undefined,
      rxBytes: Number(rx),
      txBytes: Number(tx),
    });
  }
  return state;
}

const pskCommand = (iface: string, publicKey: string, psk: string): WgCommand => ({
  args: ["set", iface, "peer", publicKey, "preshared-key", "/dev/stdin"],
  stdin: psk,
});

/** Public settings of one peer as `wg set` words. */
function peerWords(p: { endpoint?: string; allowedIps: readonly string[]; keepalive: number }): string[] {
  const out: string[] = [];
  if (p.endpoint) out.push("endpoint", p.endpoint);
  if (p.keepalive) out.push("persistent-keepalive", String(p.keepalive));
  out.push("allowed-ips", p.allowedIps.join(","));
  return out;
}

/**
 * The plan as wg invocations: secrets first (one per command, on stdin),
 * so a new peer already has its PSK before its first handshake, then one
 * command with every public change.
 */
export function wgSetCommands(iface: string, plan: Plan, desired: DesiredState): WgCommand[] {
  const secrets: WgCommand[] = [];
  const main: string[] = [];
  const wanted = new Map(desired.peers.map((p) => [p.publicKey, p]));
  for (const c of plan.device) {
    if (c.kind === "private-key")
      secrets.push({ args: ["set", iface, "private-key", "/dev/stdin"], stdin: desired.iface.privateKey });
    else main.push("listen-port", String(c.to));
  }
  const words = new Map<string, string[]>();
  const peer = (publicKey: string): string[] => {
    const w = words.get(publicKey) ?? [];
    words.set(publicKey, w);
    return w;
  };
  for (const c of plan.peers) {
    const psk = wanted.get(c.publicKey)?.presharedKey;
    switch (c.kind) {
      case "remove":
        peer(c.publicKey).push("remove");
        break;
      case "add":
        if (psk) secrets.push(pskCommand(iface, c.publicKey, psk));
        peer(c.publicKey).push(...peerWords(c));
        break;
      case "endpoint":
        peer(c.publicKey).push("endpoint", c.to);
        break;
      case "allowed-ips":
        peer(c.publicKey).push("allowed-ips", c.to.join(","));
        break;
      case "keepalive":
        peer(c.publicKey).push("persistent-keepalive", c.to ? String(c.to) : "off");
        break;
      case "psk":
        if (c.to === "new") secrets.push(pskCommand(iface, c.publicKey, psk!));
        else peer(c.publicKey).push("preshared-key", "/dev/null");
        break;
    }
  }
  for (const [publicKey, w] of words) if (w.length) main.push("peer", publicKey, ...w);
  return main.length ? [...secrets, { args: ["set", iface, ...main] }] : secrets;
}

/**
 * Same idea as uapi.ts encodeRetrigger, in wg words: remove, re-add with
 * keepalive on, restore. One `wg set` (one netlink message, or one UAPI
 * request to wireguard-go): the peer entries apply in order under the
 * device's lock, so no reader (`wg show`, a stats poll) sees the peer gone
 * and no handshake arrives while it is absent. Separate commands left that
 * gap, and a system test read an empty peer list in it.
 */
export function wgRetriggerCommands(iface: string, p: PeerState): WgCommand[] {
  const psk = p.presharedKey ? ["preshared-key", "/dev/stdin"] : [];
  const readd = ["peer", p.publicKey, ...psk, ...peerWords({ ...p, keepalive: p.persistentKeepalive || 1 })];
  const restore = p.persistentKeepalive ? [] : ["peer", p.publicKey, "persistent-keepalive", "off"];
  const args = ["set", iface, "peer", p.publicKey, "remove", ...readd, ...restore];
  return [p.presharedKey ? { args, stdin: p.presharedKey } : { args }];
}

export class WgToolControl implements WgControl {
  constructor(
    private readonly runner: CommandRunner,
    private readonly iface: string,
  ) {}

  async read(): Promise<DeviceState | undefined> {
    // Always name the interface: a bare `wg show` walks every UAPI socket on the host.
    const r = await this.runner.run("wg", ["show", this.iface, "dump"]);
    if (r.code === 0) return parseDump(r.stdout);
    if (/No such device/i.test(r.stderr)) return undefined;
    throw new CommandError(`wg show ${this.iface} dump`, r);
  }

  async write(plan: Plan, desired: DesiredState): Promise<void> {
    await this.runAll(wgSetCommands(this.iface, plan, desired));
  }

  async retrigger(peer: PeerState): Promise<void> {
    await this.runAll(wgRetriggerCommands(this.iface, peer));
  }

  private async runAll(cmds: WgCommand[]): Promise<void> {
    for (const c of cmds)
      await runChecked(this.runner, "wg", c.args, c.stdin === undefined ? undefined : { stdin: c.stdin });
  }
}

/**
 * Backend.stats() for a backend whose kernel device is read with wg(8)
 * (networkd, networkmanager): empty while the interface is unknown or absent.
 */
export async function wgToolStats(runner: CommandRunner, iface: string | undefined): Promise<PeerStats[]> {
  return iface ? peerStatsOf(await new WgToolControl(runner, iface).read()) : [];
}

/** Backend.triggerHandshake() over wg(8); `who` prefixes errors ("networkmanager"). */
export async function wgToolRetrigger(
  runner: CommandRunner,
  iface: string | undefined,
  publicKey: string,
  who: string,
  seenHandshakeMs?: number,
): Promise<void> {
  if (!iface) throw new ScopeError("backend", `${who}: triggerHandshake before apply`);
  await retriggerPeer(new WgToolControl(runner, iface), publicKey, who, iface, seenHandshakeMs);
}
