/**
 * The built-in "wg" backend plugin: kernel WireGuard through wg(8)/ip(8),
 * or userspace wireguard-go through its UAPI socket. docs/backends.md.
 *
 * [backend] options in NET.conf:
 *   flavour   = auto | kernel | wireguard-go   (default auto)
 *   interface = scope0                         (lets stats()/close() work before the first apply)
 *   netns     = NAME                           (run every command in `ip netns exec NAME`; the lab uses it)
 *   wireguard-go = /usr/bin/wireguard-go       (binary)
 */
import {
  BACKEND_API_VERSION,
  type BackendContext,
  type BackendPlugin,
  type ProbeResult,
} from "../../src/core/backend.js";
import { ScopeError } from "../../src/core/errors.js";
import { WgBackend, type Flavour, type WgParts } from "./backend.js";
import { UapiControl } from "../../src/wireguard/control.js";
import { nodeHost, type Host } from "./host.js";
import { KernelLifecycle } from "./link.js";
import { execRunner, type CommandRunner, type DaemonSpawner } from "../../src/exec.js";
import { unixSocketTransport, type UapiTransport } from "../../src/wireguard/uapi.js";
import { uapiSocketPath, WireguardGoLifecycle } from "./userspace.js";
import { WgToolControl } from "../../src/wireguard/wgtool.js";

export { WgBackend } from "./backend.js";
export type { CommandRunner } from "../../src/exec.js";
export type { UapiTransport } from "../../src/wireguard/uapi.js";

/** Injectable effects; the defaults are the real ones. */
export interface WgDeps {
  runner?: CommandRunner & DaemonSpawner;
  /** Transport for a UAPI socket path. */
  uapi?: (socketPath: string) => UapiTransport;
  host?: Host;
  /** Skip detection. */
  flavour?: Flavour;
  /** Directory of the UAPI sockets (wireguard-go's compiled-in /var/run/wireguard). */
  socketDir?: string;
}

const FLAVOURS: readonly string[] = ["kernel", "wireguard-go"];

export function createWgBackend(ctx: BackendContext, deps: WgDeps = {}): WgBackend {
  const opt = ctx.options;
  const runner = deps.runner ?? execRunner({ netns: opt.netns || undefined });
  const host = deps.host ?? nodeHost;
  const uapi = deps.uapi ?? ((path: string) => unixSocketTransport(path));
  const binary = opt["wireguard-go"] || "wireguard-go";
  const configured = deps.flavour ?? (opt.flavour && opt.flavour !== "auto" ? opt.flavour : undefined);
  if (configured !== undefined && !FLAVOURS.includes(configured)) {
    throw new ScopeError(
      "config",
      `wg backend: flavour must be auto, kernel or wireguard-go, not ${JSON.stringify(configured)}`,
    );
  }

  const ok = async (cmd: string, args: string[]): Promise<boolean> =>
    (await runner.run(cmd, args)).code === 0;
  // A loaded module, or one modprobe could load (dry run: probe() has no side effects).
  const kernelUsable = async (): Promise<boolean> =>
    ((await host.exists("/sys/module/wireguard")) || (await ok("modprobe", ["-n", "-q", "wireguard"]))) &&
    (await ok("wg", ["--version"]));
  const userspaceUsable = (): Promise<boolean> => ok(binary, ["--version"]);

  const probe = async (): Promise<ProbeResult> => {
    if (configured === "kernel" || (!configured && (await kernelUsable()))) {
      return configured && !(await kernelUsable())
        ? { usable: false, detail: "kernel WireGuard configured but no wireguard module or wg(8)" }
        : { usable: true, detail: "kernel" };
    }
    if (await userspaceUsable()) return { usable: true, detail: "wireguard-go" };
    return { usable: false, detail: `no wireguard kernel module and no ${binary}` };
  };

  const pickFlavour = async (iface: string): Promise<Flavour> => {
    if (configured) return configured as Flavour;
    // A live wireguard-go for this name (left by a previous daemon) is reused, whatever the kernel offers.
    if (await host.exists(uapiSocketPath(iface, deps.socketDir))) return "wireguard-go";
    if (await kernelUsable()) return "kernel";
    if (await userspaceUsable()) return "wireguard-go";
    throw new ScopeError("unavailable", `wg backend: no wireguard kernel module and no ${binary}`);
  };

  const parts = async (iface: string): Promise<WgParts> => {
    const flavour = await pickFlavour(iface);
    if (flavour === "kernel") {
      return {
        flavour,
        control: new WgToolControl(runner, iface),
        lifecycle: new KernelLifecycle(runner, iface),
      };
    }
    const transport = uapi(uapiSocketPath(iface, deps.socketDir));
    const control = new UapiControl(transport, (keys) =>
      ctx.logger.debug("wg: ignored UAPI keys", { iface, keys }),
    );
    const lifecycle = new WireguardGoLifecycle({
      iface,
      runner,
      transport,
      host,
      stateDir: ctx.stateDir,
      binary,
    });
    return { flavour, control, lifecycle };
  };

  return new WgBackend(ctx, { runner, probe, parts });
}

export const plugin: BackendPlugin = {
  apiVersion: BACKEND_API_VERSION,
  name: "wg",
  create: (ctx) => createWgBackend(ctx),
};

export default plugin;
