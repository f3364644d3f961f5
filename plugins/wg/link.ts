/**
 * The link half of both flavours, through ip(8): read addresses/MTU/state,
 * apply LinkChanges, and create/delete a kernel WireGuard link.
 */
import type { LinkChange } from "../../src/wireguard/diff.js";
import { canonicalAddress } from "../../src/core/ip.js";
import type { LinkState } from "../../src/wireguard/model.js";
import { CommandError, runChecked, type CommandRunner } from "../../src/exec.js";

/** Creates and deletes the interface; one per flavour (userspace.ts for wireguard-go). */
export interface Lifecycle {
  /** Make the interface exist; its WireGuard config is empty afterwards. */
  create(): Promise<void>;
  /** Delete the interface and whatever runs it. No error when already gone. */
  destroy(): Promise<void>;
}

interface IpAddrJson {
  flags?: string[];
  mtu?: number;
  addr_info?: { local?: string; prefixlen?: number; scope?: string }[];
}

/** Parse `ip -j address show dev IFACE`. */
export function parseIpAddr(json: string): LinkState | undefined {
  const [link] = JSON.parse(json) as IpAddrJson[];
  if (!link) return undefined;
  const addresses = (link.addr_info ?? [])
    .filter((a) => a.local !== undefined && a.scope !== "link")
    .map((a) => canonicalAddress(`${a.local}/${a.prefixlen}`))
    .sort();
  return { up: (link.flags ?? []).includes("UP"), mtu: link.mtu ?? 0, addresses };
}

export async function readLink(runner: CommandRunner, iface: string): Promise<LinkState | undefined> {
  const r = await runner.run("ip", ["-j", "address", "show", "dev", iface]);
  if (r.code !== 0) return undefined;
  return parseIpAddr(r.stdout);
}

export function linkCommand(iface: string, c: LinkChange): string[] {
  switch (c.kind) {
    case "mtu":
      return ["link", "set", "dev", iface, "mtu", String(c.to)];
    case "address-add":
      return ["address", "add", c.address, "dev", iface];
    case "address-del":
      return ["address", "del", c.address, "dev", iface];
    case "up":
      return ["link", "set", "dev", iface, "up"];
  }
}

export async function applyLink(
  runner: CommandRunner,
  iface: string,
  changes: readonly LinkChange[],
): Promise<void> {
  for (const c of changes) await runChecked(runner, "ip", linkCommand(iface, c));
}

export class KernelLifecycle implements Lifecycle {
  constructor(
    private readonly runner: CommandRunner,
    private readonly iface: string,
  ) {}

  async create(): Promise<void> {
    await runChecked(this.runner, "ip", ["link", "add", "dev", this.iface, "type", "wireguard"]);
  }

  async destroy(): Promise<void> {
    const r = await this.runner.run("ip", ["link", "del", "dev", this.iface]);
    if (r.code !== 0 && !/Cannot find device|does not exist/i.test(r.stderr)) {
      throw new CommandError(`ip link del dev ${this.iface}`, r);
    }
  }
}
