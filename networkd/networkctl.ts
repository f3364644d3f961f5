/**
 * Talking to systemd-networkd: `networkctl` and `systemctl` behind the
 * CommandRunner seam of src/exec.ts (a recording fake is in networkd/testing.ts).
 *
 * The exec route instead of D-Bus (org.freedesktop.network1) keeps this
 * layer free of a bus connection and behaves the same on every systemd
 * since 246; `--json=short` exists since systemd 250 and we fall back to
 * the text output before that.
 */
import { CommandError, runChecked, type CommandRunner, type RunResult } from "../src/exec.js";

/** What `networkctl status IFACE` / `list` tell about one link; names as in networkd's JSON. */
export interface LinkStatus {
  name: string;
  index?: number;
  kind?: string;
  /** e.g. "routable", "no-carrier", "off". */
  operationalState?: string;
  /** networkd's setup state: "configured", "configuring", "unmanaged", "failed", "linger". */
  administrativeState?: string;
  networkFile?: string;
  netdevFile?: string;
}

interface JsonLink {
  Name?: string;
  Index?: number;
  Kind?: string;
  OperationalState?: string;
  AdministrativeState?: string;
  SetupState?: string;
  NetworkFile?: string;
  NetDevFile?: string;
}

const fromJson = (j: JsonLink): LinkStatus => ({
  name: j.Name ?? "",
  ...(j.Index !== undefined && { index: j.Index }),
  ...(j.Kind !== undefined && { kind: j.Kind }),
  ...(j.OperationalState !== undefined && { operationalState: j.OperationalState }),
  ...((j.AdministrativeState ?? j.SetupState) !== undefined && {
    administrativeState: j.AdministrativeState ?? j.SetupState,
  }),
  ...(j.NetworkFile !== undefined && { networkFile: j.NetworkFile }),
  ...(j.NetDevFile !== undefined && { netdevFile: j.NetDevFile }),
});

/** `networkctl list --no-legend` rows: "IDX LINK TYPE OPERATIONAL SETUP". */
export function parseListText(text: string): LinkStatus[] {
  return text
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && /^\d+$/.test(f[0] as string))
    .map(([idx, name, , oper, setup]) => ({
      name: name as string,
      index: Number(idx),
      operationalState: oper as string,
      administrativeState: setup as string,
    }));
}

/** Any shape networkctl prints with --json: a link object, or {"Interfaces": [...]}. */
export function parseLinksJson(text: string): LinkStatus[] {
  const j = JSON.parse(text) as JsonLink & { Interfaces?: JsonLink[] };
  return (Array.isArray(j.Interfaces) ? j.Interfaces : [j]).map(fromJson);
}

const jsonUnsupported = (r: RunResult): boolean => r.code !== 0 && /json/i.test(r.stderr);

export class Networkctl {
  constructor(
    private readonly runner: CommandRunner,
    private readonly bin = { networkctl: "networkctl", systemctl: "systemctl" },
  ) {}

  /** Is systemd-networkd running (and so managing links)? Cheap and side-effect free. */
  async isActive(): Promise<{ active: boolean; detail: string }> {
    return this.unitActive("systemd-networkd");
  }

  /**
   * Is NetworkManager running? Both can be active on one host (Debian and
   * Fedora install both); then NetworkManager is the one managing networking.
   */
  async networkManagerActive(): Promise<{ active: boolean; detail: string }> {
    return this.unitActive("NetworkManager");
  }

  private async unitActive(unit: string): Promise<{ active: boolean; detail: string }> {
    let r: RunResult;
    try {
      r = await this.runner.run(this.bin.systemctl, ["is-active", `${unit}.service`]);
    } catch (e) {
      return { active: false, detail: `cannot run ${this.bin.systemctl}: ${(e as Error).message}` };
    }
    const state = r.stdout.trim() || r.stderr.trim() || `exit ${r.code}`;
    return { active: r.code === 0 && state === "active", detail: `${unit} is ${state}` };
  }

  /** Major systemd version from `networkctl --version` ("systemd 257 (257.4-1)"), undefined if unreadable. */
  async version(): Promise<number | undefined> {
    const r = await this.runner.run(this.bin.networkctl, ["--version"]);
    const m = /^systemd (\d+)/m.exec(r.stdout);
    return m ? Number(m[1]) : undefined;
  }

  /** Re-reads .netdev/.network files; creates netdevs that do not exist yet. */
  async reload(): Promise<void> {
    await runChecked(this.runner, this.bin.networkctl, ["reload"]);
  }

  /** Re-applies the .network settings (addresses) of a link; does not touch WireGuard peers. */
  async reconfigure(iface: string): Promise<void> {
    await runChecked(this.runner, this.bin.networkctl, ["reconfigure", iface]);
  }

  /** Removes a virtual link. */
  async deleteLink(iface: string): Promise<void> {
    await runChecked(this.runner, this.bin.networkctl, ["delete", iface]);
  }

  /** undefined when networkd does not know the link. */
  async status(iface: string): Promise<LinkStatus | undefined> {
    const r = await this.runner.run(this.bin.networkctl, ["status", iface, "--json=short", "--no-pager"]);
    if (r.code === 0) return parseLinksJson(r.stdout).find((l) => l.name === iface);
    if (!jsonUnsupported(r)) return undefined;
    // Before systemd 250: only the table of `list` is stable enough to read.
    return (await this.list()).find((l) => l.name === iface);
  }

  async list(): Promise<LinkStatus[]> {
    const r = await this.runner.run(this.bin.networkctl, ["list", "--json=short", "--no-pager"]);
    if (r.code === 0) return parseLinksJson(r.stdout);
    if (!jsonUnsupported(r)) throw new CommandError("networkctl list", r);
    return parseListText(
      (await runChecked(this.runner, this.bin.networkctl, ["list", "--no-legend", "--no-pager"])).stdout,
    );
  }
}
