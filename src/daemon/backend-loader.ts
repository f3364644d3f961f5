/**
 * Backend plugins by name (DESIGN §7, docs/plugins.md): built-ins from
 * plugins/NAME/index.js, third-party ones from /usr/lib/scope/plugins/NAME/
 * or an npm package; each must export a BackendPlugin with our apiVersion.
 * `auto` takes the first built-in whose probe() says it can work here, in
 * the order NetworkManager, networkd, wg.
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  BACKEND_API_VERSION,
  type Backend,
  type BackendContext,
  type BackendPlugin,
} from "../core/backend.js";
import { ScopeError } from "../core/errors.js";

export const BUILTIN_BACKENDS = ["networkmanager", "networkd", "wg"] as const;
export const THIRD_PARTY_DIR = "/usr/lib/scope/plugins";

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

type PluginModule = { plugin?: BackendPlugin; default?: BackendPlugin };

/**
 * The built-ins as import() of fixed paths, not of a computed URL: the CLI
 * bundle (src/cli/bundle.ts) carries them as chunks sharing its one copy of
 * src/ (one ScopeError class, one logger), loaded only when chosen.
 */
const BUILTIN: Record<(typeof BUILTIN_BACKENDS)[number], () => Promise<PluginModule>> = {
  networkmanager: () => import("../../plugins/networkmanager/index.js"),
  networkd: () => import("../../plugins/networkd/index.js"),
  wg: () => import("../../plugins/wg/index.js"),
};

const isBuiltin = (name: string): name is keyof typeof BUILTIN => Object.hasOwn(BUILTIN, name);

async function importPlugin(name: string): Promise<BackendPlugin | undefined> {
  const builtin = new URL(`../../plugins/${name}/index.js`, import.meta.url);
  const third = join(THIRD_PARTY_DIR, name, "index.js");
  let mod: PluginModule | undefined;
  if (isBuiltin(name) && (await exists(fileURLToPath(builtin)))) mod = await BUILTIN[name]();
  else if (await exists(third)) mod = await import(pathToFileURL(third).href);
  else {
    try {
      mod = await import(name.startsWith("@") || name.startsWith("scope-") ? name : `scope-backend-${name}`);
    } catch {
      return undefined;
    }
  }
  return mod?.plugin ?? mod?.default;
}

export async function loadBackendPlugin(name: string): Promise<BackendPlugin> {
  if (!/^(@[a-z0-9-]+\/)?[a-z0-9][a-z0-9.-]*$/.test(name))
    throw new ScopeError("config", `backend type ${JSON.stringify(name)} is not a plugin name`);
  const plugin = await importPlugin(name);
  if (!plugin)
    throw new ScopeError(
      "config",
      `no backend plugin "${name}" (built-in, ${THIRD_PARTY_DIR}/${name} or npm)`,
    );
  if (plugin.apiVersion !== BACKEND_API_VERSION || typeof plugin.create !== "function") {
    throw new ScopeError(
      "config",
      `backend plugin "${name}" has apiVersion ${String(plugin.apiVersion)}, need ${BACKEND_API_VERSION}`,
    );
  }
  return plugin;
}

/** Creates the configured backend; for `auto`, the first built-in that reports itself usable. */
export async function createBackend(type: string, ctx: BackendContext): Promise<Backend> {
  if (type !== "auto") return (await loadBackendPlugin(type)).create(ctx);
  const tried: string[] = [];
  for (const name of BUILTIN_BACKENDS) {
    const plugin = await importPlugin(name).catch(() => undefined);
    if (!plugin || plugin.apiVersion !== BACKEND_API_VERSION) continue;
    let backend: Backend;
    try {
      backend = plugin.create(ctx);
    } catch (e) {
      tried.push(`${name}: ${(e as Error).message}`);
      continue;
    }
    const probe = await backend.probe().catch((e: Error) => ({ usable: false, detail: e.message }));
    if (probe.usable) {
      ctx.logger.info("backend chosen", { backend: name, detail: probe.detail });
      return backend;
    }
    tried.push(`${name}: ${probe.detail}`);
    await backend.close().catch(() => undefined);
  }
  throw new ScopeError("unavailable", `no usable backend (${tried.join("; ")})`);
}
