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
import { registryUrls } from "../client/registry-list.js";

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
  if (!hostOk) return /^[0-9.]+$/.test(host) || host.startsWith("[") ? "not an address" : LISTEN_EXPECTED;
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

/** "600/1m": at most 600 in each minute; "0" or "off": no limit. → { points, duration (s) }. */
export const RateValue = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const text = String(v).trim();
  if (text === "0" || text === "off") return { points: 0, duration: 1 };
  const m = /^(\d{1,9})\s*\/\s*(\d*)\s*(s|m|h)$/.exec(text);
  if (!m) {
    ctx.addIssue({ code: "custom", message: 'expected COUNT/PERIOD like "600/1m" or "20/10s", or "off"' });
    return z.NEVER;
  }
  const per = Number(m[2] === "" ? 1 : m[2]) * { s: 1, m: 60, h: 3600 }[m[3] as "s" | "m" | "h"];
  if (per === 0) {
    ctx.addIssue({ code: "custom", message: "the period must be at least 1s" });
    return z.NEVER;
  }
  return { points: Number(m[1]), duration: per };
});

export const RegistryConfig = z.strictObject({
  registry: z
    .strictObject({
      listen: ListenAddress.default("[::]:8470"),
      data: absPath.default("/var/lib/scope/registry"),
      /** Second UDP reflector port for mapping tests; default listen port + 1. */
      reflector_port2: port.optional(),
      /** In a directory of its own (0750): only root and the admin group may enter (admin-socket.ts). */
      admin_socket: absPath.default("/run/scope/registry/admin.sock"),
      /** Prometheus /metrics listener, apart from the API port; "off" for none. */
      metrics_listen: z.union([z.literal("off"), ListenAddress]).default("127.0.0.1:9470"),
      /** File holding the admin token for remote admin; no remote admin when absent. */
      admin_token_file: absPath.optional(),
      tls_cert: absPath.optional(),
      tls_key: absPath.optional(),
      /** How long events are kept for Last-Event-ID resume. */
      event_retention: Duration.default(86400),
    })
    .prefault({}),
  /** Quotas per source address and per member (src/registry/limits.ts, docs/hardening.md). */
  limits: z
    .strictObject({
      join_per_address: RateValue.prefault("60/1m"),
      join_per_peer: RateValue.prefault("10/1m"),
      requests_per_address: RateValue.prefault("6000/1m"),
      requests_per_peer: RateValue.prefault("1200/1m"),
      messages_per_peer: RateValue.prefault("600/1m"),
      reports_per_peer: RateValue.prefault("120/1m"),
      streams_per_peer: z.coerce.number().int().min(0).max(1000).default(4),
      /** TCP connections open at once on the API port (event streams included). */
      max_connections: z.coerce.number().int().min(1).max(1_000_000).default(20_000),
    })
    .prefault({}),
  /** Where the registry keeps its state: SQLite under `data` (zero setup), or PostgreSQL for several replicas. */
  store: z
    .strictObject({
      kind: z.enum(["sqlite", "postgres"]).default("sqlite"),
      url: z
        .string()
        .regex(/^postgres(ql)?:\/\//, "expected postgres://…")
        .optional(),
      /** A file holding the URL, for one with a password in it (keep it 0600). */
      url_file: absPath.optional(),
    })
    .prefault({}),
  log: z.strictObject({ level: logLevel.default("info") }).prefault({}),
});
export type RegistryConfig = z.infer<typeof RegistryConfig>;

export const TimerProfileName = z.enum(["fast", "seed"]);

export const PskMode = z.enum(["off", "rotate"]);
/** Seconds between rotations per pair; WireGuard re-keys every 2 min, so more often adds nothing. */
export const PskInterval = Duration.pipe(z.number().min(1, "at least 1s"));

export const EdgeConfig = z.strictObject({
  /** One registry URL, or several replicas' comma-separated (the daemon fails over in order). */
  registry: z.strictObject({
    url: z.string().check((ctx) => {
      const urls = registryUrls(ctx.value);
      const bad = urls.find((u) => !z.url({ protocol: /^https?$/ }).safeParse(u).success);
      if (urls.length === 0 || bad !== undefined)
        ctx.issues.push({
          code: "custom",
          message: `not an http(s) URL: ${bad ?? "(empty)"}`,
          input: ctx.value,
        });
    }),
    /** PEM CA that signs the registry's certificate (src/client/tls.ts); default: the system's CAs. */
    ca_file: absPath.optional(),
    /** sha256/BASE64 of the registry certificate's public key, checked on top of the chain. */
    pin: z
      .string()
      .regex(/^sha256\/[A-Za-z0-9+/]{43}=$/, "expected sha256/ and 44 base64 characters")
      .optional(),
  }),
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
  /** Post-quantum PSK rotation (docs/security.md). */
  psk: z
    .strictObject({
      mode: PskMode.default("off"),
      interval: PskInterval.default(120),
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
