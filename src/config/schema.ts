/**
 * One schema per config file kind. Values arrive from INI as strings (or
 * booleans for true/false); the schemas coerce and check them, and the types
 * of the loaded config are derived from the schemas. Every key with its
 * default is documented in docs/configuration.md.
 */
import { z } from "zod";
import { isIpv4, isIpv6, parseEndpoint } from "../core/ip.js";
import { checkInterfaceName } from "../core/names.js";
import { NetworkName } from "../core/protocol.js";
import { LOG_LEVELS } from "../log.js";

const LISTEN_EXPECTED = 'expected ADDR:PORT, e.g. "[::]:8470" or "0.0.0.0:8470"';

/** What is wrong with a listen address, by the one IP module (src/core/ip.ts); undefined when fine. */
function listenProblem(s: string): string | undefined {
  const colon = s.lastIndexOf(":");
  const portText = s.slice(colon + 1);
  if (colon < 0 || !/^\d{1,5}$/.test(portText)) return LISTEN_EXPECTED;
  const host = s.slice(0, colon);
  const hostOk =
    host === "" ||
    (host.startsWith("[") && host.endsWith("]")
      ? isIpv6(host.slice(1, -1))
      : /^[0-9.]+$/.test(host)
        ? isIpv4(host) // "010.1.1.1" is no address (and no host name to resolve)
        : /^[A-Za-z0-9.-]+$/.test(host));
  if (!hostOk) return LISTEN_EXPECTED;
  const port = Number(portText);
  return port >= 1 && port <= 65535 ? undefined : "port must be 1-65535";
}

/** "ADDR:PORT", "[v6]:PORT", "HOSTNAME:PORT" or ":PORT" (all addresses). */
export const ListenAddress = z.string().check((ctx) => {
  const problem = listenProblem(ctx.value);
  if (problem) ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
});

const port = z.coerce.number().int().min(1).max(65535);
const bool = z
  .union([z.boolean(), z.enum(["yes", "no", "true", "false", "on", "off", "1", "0"])])
  .transform((v) => v === true || v === "yes" || v === "true" || v === "on" || v === "1");
const absPath = z.string().regex(/^\//, "must be an absolute path");
const logLevel = z.enum(LOG_LEVELS);

/** "90s", "15m", "24h", "7d" → seconds. */
export const Duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(String(v).trim());
  if (!m) {
    ctx.addIssue({ code: "custom", message: 'expected a duration like "90s", "15m", "24h" or "7d"' });
    return z.NEVER;
  }
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? "s") as "s" | "m" | "h" | "d"];
});

export const RegistryConfig = z.strictObject({
  registry: z
    .strictObject({
      listen: ListenAddress.default("[::]:8470"),
      data: absPath.default("/var/lib/scope/registry"),
      /** Second UDP reflector port for mapping tests; default listen port + 1. */
      reflector_port2: port.optional(),
      admin_socket: absPath.default("/run/scope/registry.sock"),
      /** File holding the admin token for remote admin; no remote admin when absent. */
      admin_token_file: absPath.optional(),
      tls_cert: absPath.optional(),
      tls_key: absPath.optional(),
      /** How long events are kept for Last-Event-ID resume. */
      event_retention: Duration.default(86400),
    })
    .prefault({}),
  log: z.strictObject({ level: logLevel.default("info") }).prefault({}),
});
export type RegistryConfig = z.infer<typeof RegistryConfig>;

export const TimerProfileName = z.enum(["fast", "seed"]);

export const EdgeConfig = z.strictObject({
  registry: z.strictObject({ url: z.url({ protocol: /^https?$/ }) }),
  network: z.strictObject({ name: NetworkName }),
  identity: z.strictObject({ key_file: absPath }),
  wireguard: z.strictObject({
    interface: z
      .string()
      .check((ctx) => {
        const problem = checkInterfaceName(ctx.value);
        if (problem) ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
      })
      .default("scope0"),
    listen_port: port.default(51820),
    private_key_file: absPath,
    mtu: z.coerce.number().int().min(1280).max(9000).optional(),
    /** A fixed public WireGuard endpoint "ADDR:PORT" ("[v6]:PORT"), published as-is: a hub's. */
    endpoint: z
      .string()
      .check((ctx) => {
        const e = parseEndpoint(ctx.value);
        if (!e)
          ctx.issues.push({
            code: "custom",
            message: 'expected ADDR:PORT, e.g. "198.51.100.7:51820"',
            input: ctx.value,
          });
      })
      .optional(),
  }),
  daemon: z
    .strictObject({
      timers: TimerProfileName.default("fast"),
      /** UDP port of the prober; default listen_port + 1. */
      probe_port: port.optional(),
      state_dir: absPath.optional(),
      control_socket: absPath.optional(),
      log_level: logLevel.default("info"),
    })
    .prefault({}),
  /** type picks the plugin; every other key is handed to it as an option. */
  backend: z
    .looseObject({
      type: z
        .string()
        .regex(/^[a-z0-9-]+$/)
        .default("auto"),
    })
    .prefault({}),
});
export type EdgeConfig = z.infer<typeof EdgeConfig>;

export { bool as BoolValue };
