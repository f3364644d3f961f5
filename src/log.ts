/**
 * Logging on winston. Under systemd (JOURNAL_STREAM or INVOCATION_ID set)
 * lines carry a syslog priority prefix and no timestamp, so journald keeps
 * its own; elsewhere they get an ISO timestamp. Fields are printed as
 * key=value after the message.
 *
 * Secrets never reach the output: fields whose name says secret are replaced,
 * and every string registered with registerSecret() is masked wherever it
 * appears (message or field), so a token read from a file stays out of the
 * logs even if a careless message interpolates it.
 */
import winston from "winston";
import type { LogSink } from "./core/logger.js";

export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger extends LogSink {
  child(component: string): Logger;
}

const SECRET_FIELD =
  /^(privateKey|secretKey|presharedKey|psk|token|adminToken|secret|password|signature|authorization)$/i;
const REDACTED = "[redacted]";
const secrets = new Set<string>();

/**
 * Masks s in every later log line, by value: a key interpolated into a
 * message or an error text, or sitting in a field with an innocent name, is
 * masked as well as one in a field called privateKey. Short strings are
 * ignored: masking "a" would garble everything. Bounded (PSKs rotate): the
 * oldest go first, long after they stopped being used.
 */
export function registerSecret(s: string): void {
  if (s.length < 8 || secrets.has(s)) return;
  secrets.add(s);
  if (secrets.size > MAX_SECRETS) secrets.delete(secrets.values().next().value as string);
}
const MAX_SECRETS = 4096;

function mask(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

function formatValue(v: unknown): string {
  if (typeof v === "string") return /[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
}

export function formatFields(fields: Record<string, unknown> | undefined): string {
  if (!fields) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    parts.push(`${k}=${SECRET_FIELD.test(k) ? REDACTED : formatValue(v)}`);
  }
  return parts.length ? " " + parts.join(" ") : "";
}

const underSystemd = (): boolean => Boolean(process.env.JOURNAL_STREAM || process.env.INVOCATION_ID);
// sd-daemon(3) priorities: journald reads "<N>" at the start of a stdout line.
const SYSLOG_PRIORITY: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };

const lineFormat = winston.format.printf((info) => {
  const component = info.component ? `${String(info.component)}: ` : "";
  const body = mask(
    `${component}${String(info.message)}${formatFields(info.fields as Record<string, unknown>)}`,
  );
  if (underSystemd()) return `<${SYSLOG_PRIORITY[info.level] ?? 6}>${body}`;
  return `${new Date().toISOString()} ${info.level.padEnd(5)} ${body}`;
});

const root = winston.createLogger({
  level: "info",
  levels: { error: 0, warn: 1, info: 2, debug: 3 },
  format: lineFormat,
  // stderr for every level: stdout belongs to command output (--json).
  transports: [new winston.transports.Console({ stderrLevels: [...LOG_LEVELS] })],
});

const RANK: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

export function setLogLevel(level: LogLevel): void {
  root.level = level;
}

export const isLogLevel = (s: string): s is LogLevel => (LOG_LEVELS as readonly string[]).includes(s);

export function createLogger(component: string): Logger {
  const at =
    (level: LogLevel) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      // winston formats a line (fields, timestamp) before its transport drops
      // it by level: skip a line below the level here, for nothing.
      if (RANK[level] > RANK[root.level as LogLevel]) return;
      root.log({ level, message: msg, component, fields });
    };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (sub) => createLogger(`${component}/${sub}`),
  };
}
