/**
 * What a hub changes on its host so that it forwards between its WireGuard
 * peers (DESIGN §5), and nothing more (docs/hubs.md):
 *
 * - the per-interface forwarding sysctls of the Scope interface only
 *   (net.ipv4.conf.IFACE.forwarding, net.ipv6.conf.IFACE.forwarding); the
 *   global net.ipv4.ip_forward and the other interfaces stay as they are;
 * - where an nftables firewall filters forwarding (a base chain on the
 *   forward hook), one rule at the top of each such chain that accepts
 *   packets coming in on the interface and going out on the same interface,
 *   tagged with a comment so that it is found again and removed.
 *
 * disable() undoes both: the sysctls get back the values found (they go
 * with the interface anyway when `scope leave` removes it), and every rule
 * carrying the comment is deleted, also rules a crashed daemon left behind.
 */
import { readFile, writeFile } from "node:fs/promises";
import type { CommandRunner } from "../exec.js";
import type { LogSink } from "../core/logger.js";

/** The seam the daemon uses; a fake in tests records the calls. */
export interface HubForwarding {
  enable(iface: string): Promise<void>;
  disable(iface: string): Promise<void>;
}

/** Reads and writes one sysctl by its /proc/sys path; undefined when it does not exist. */
export interface SysctlIO {
  read(path: string): Promise<string | undefined>;
  write(path: string, value: string): Promise<void>;
}

export const procSysctl: SysctlIO = {
  read: (path) =>
    readFile(path, "utf8").then(
      (t) => t.trim(),
      () => undefined,
    ),
  write: (path, value) => writeFile(path, `${value}\n`),
};

const FAMILIES = ["ipv4", "ipv6"] as const;
const sysctlPath = (fam: (typeof FAMILIES)[number], iface: string): string =>
  `/proc/sys/net/${fam}/conf/${iface}/forwarding`;

/** The comment that tags our rule; the interface name is in it so two networks never touch each other's. */
export const ruleComment = (iface: string): string => `scope hub ${iface}`;

interface NftChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
}
interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
}

/** The forward-hook base chains and the rules of a `nft -j -a list ruleset` answer. */
export function parseRuleset(json: string): { chains: NftChain[]; rules: NftRule[] } {
  const items = (JSON.parse(json) as { nftables?: Record<string, unknown>[] }).nftables ?? [];
  const chains: NftChain[] = [];
  const rules: NftRule[] = [];
  for (const item of items) {
    if (item["chain"]) chains.push(item["chain"] as NftChain);
    if (item["rule"]) rules.push(item["rule"] as NftRule);
  }
  const forward = chains.filter((c) => c.hook === "forward" && ["ip", "ip6", "inet"].includes(c.family));
  return { chains: forward, rules };
}

export class HostHubForwarding implements HubForwarding {
  /** Sysctl values found before we changed them, by path. */
  private readonly found = new Map<string, string>();

  constructor(
    private readonly runner: CommandRunner,
    private readonly log: LogSink,
    private readonly sysctl: SysctlIO = procSysctl,
  ) {}

  async enable(iface: string): Promise<void> {
    for (const fam of FAMILIES) {
      const path = sysctlPath(fam, iface);
      const old = await this.sysctl.read(path);
      if (old === undefined) {
        if (fam === "ipv4") throw new Error(`no ${path}: interface ${iface} missing`);
        continue; // IPv6 disabled on this host
      }
      if (old === "1") continue;
      if (!this.found.has(path)) this.found.set(path, old);
      await this.sysctl.write(path, "1");
    }
    const ruleset = await this.ruleset();
    if (!ruleset) return;
    const comment = ruleComment(iface);
    for (const c of ruleset.chains) {
      const ours = ruleset.rules.some(
        (r) => r.family === c.family && r.table === c.table && r.chain === c.name && r.comment === comment,
      );
      if (ours) continue;
      const r = await this.runner.run("nft", [
        "insert",
        "rule",
        c.family,
        c.table,
        c.name,
        "iifname",
        iface,
        "oifname",
        iface,
        "accept",
        "comment",
        `"${comment}"`,
      ]);
      if (r.code !== 0)
        throw new Error(`nft insert into ${c.family} ${c.table} ${c.name}: ${r.stderr.trim()}`);
      this.log.info("hub: firewall admits forwarding on the interface", {
        chain: `${c.family} ${c.table} ${c.name}`,
      });
    }
  }

  async disable(iface: string): Promise<void> {
    for (const fam of FAMILIES) {
      const path = sysctlPath(fam, iface);
      const old = this.found.get(path);
      if (old === undefined) continue;
      this.found.delete(path);
      // Gone with the interface already: nothing left to restore.
      if ((await this.sysctl.read(path)) !== undefined) await this.sysctl.write(path, old);
    }
    const ruleset = await this.ruleset();
    if (!ruleset) return;
    const comment = ruleComment(iface);
    for (const r of ruleset.rules.filter((x) => x.comment === comment)) {
      const out = await this.runner.run("nft", [
        "delete",
        "rule",
        r.family,
        r.table,
        r.chain,
        "handle",
        String(r.handle),
      ]);
      if (out.code !== 0)
        this.log.warn("hub: could not remove our firewall rule", { error: out.stderr.trim() });
    }
  }

  /** The ruleset, or undefined where there is no nft (or no permission): then there is no nftables firewall to open. */
  private async ruleset(): Promise<ReturnType<typeof parseRuleset> | undefined> {
    const r = await this.runner.run("nft", ["-j", "-a", "list", "ruleset"]);
    if (r.code !== 0) return undefined;
    try {
      return parseRuleset(r.stdout);
    } catch {
      return undefined;
    }
  }
}
