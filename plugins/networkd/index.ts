/**
 * The built-in "networkd" backend plugin: systemd-networkd owns the
 * WireGuard interface through files under /etc/systemd/network
 * (docs/backends.md, "networkd"). backend.ts has the reconcile logic.
 *
 * [backend] options in NET.conf:
 *   dir           = /etc/systemd/network  (where the files go)
 *   interface     = scope0                (lets stats()/close() work before the first apply;
 *                                          otherwise read from the .netdev on disk)
 *   firewall-mark = 51820                 ([WireGuard] FirewallMark=)
 *   route-table   = off                   ([WireGuard] RouteTable=; networkd's default is off)
 *   route-metric  = 100                   ([WireGuard] RouteMetric=)
 * Keys may also be written with "_" (firewall_mark), like the rest of NET.conf.
 */
import { BACKEND_API_VERSION, type BackendContext, type BackendPlugin } from "../../src/core/backend.js";
import { ScopeError } from "../../src/core/errors.js";
import { realFileSystem, type FileSystem } from "../../networkd/files.js";
import { Networkctl } from "../../networkd/networkctl.js";
import { execRunner, type CommandRunner } from "../../src/exec.js";
import type { RenderOptions } from "../../networkd/render.js";
import { UINT32_MAX, parseUint } from "../../networkd/values.js";
import { NetworkdBackend } from "./backend.js";

export { NetworkdBackend } from "./backend.js";

export interface NetworkdDeps {
  fs?: FileSystem;
  runner?: CommandRunner;
  groupFile?: string;
}

function renderOptions(options: Record<string, string>): Omit<RenderOptions, "network"> {
  // NET.conf elsewhere spells keys with "_" (docs/configuration.md), the wg plugin with "-": take both.
  const opt = (key: string): string | undefined => options[key] ?? options[key.replace(/-/g, "_")];
  const number = (key: string): number | undefined => {
    const raw = opt(key);
    if (raw === undefined || raw === "") return undefined;
    const n = parseUint(raw, 0, UINT32_MAX);
    if (n === undefined)
      throw new ScopeError("config", `networkd backend: ${key} must be 0..${UINT32_MAX}, not "${raw}"`);
    return n;
  };
  const dir = opt("dir") || undefined;
  if (dir !== undefined && !dir.startsWith("/"))
    throw new ScopeError("config", `networkd backend: dir must be an absolute path, not "${dir}"`);
  const firewallMark = number("firewall-mark");
  const routeMetric = number("route-metric");
  return {
    ...(dir !== undefined && { dir }),
    ...(firewallMark !== undefined && { firewallMark }),
    ...(opt("route-table") && { routeTable: opt("route-table") }),
    ...(routeMetric !== undefined && { routeMetric }),
  };
}

export function createNetworkdBackend(ctx: BackendContext, deps: NetworkdDeps = {}): NetworkdBackend {
  const runner = deps.runner ?? execRunner();
  return new NetworkdBackend(ctx, {
    fs: deps.fs ?? realFileSystem,
    runner,
    networkctl: new Networkctl(runner),
    render: renderOptions(ctx.options),
    ...(deps.groupFile !== undefined && { groupFile: deps.groupFile }),
  });
}

export const plugin: BackendPlugin = {
  apiVersion: BACKEND_API_VERSION,
  name: "networkd",
  create: (ctx) => createNetworkdBackend(ctx),
};

export default plugin;
