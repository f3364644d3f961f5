/**
 * Logging: one line per call on stderr. Under systemd (JOURNAL_STREAM or INVOCATION_ID set)
 * lines carry a syslog priority prefix and no timestamp, so journald keeps
 * its own; elsewhere they get an ISO timestamp. Fields are printed as
 * key=value after the message.
 *
 * Secrets never reach the output: fields whose name says secret are replaced,
 * and every string registered with registerSecret() is masked wherever it
 * appears (message or field), so a token read from a file stays out of the
 * logs even if a careless message interpolates it.
 *
 * Written directly, not through winston: loading winston and its format
 * and transport modules took 30-75 ms of every `scope` start (a fifth of a
 * daemon's start-up, which 40 edges joining at once pay on 2 cores), for
 * what is here one printf and one write.
 */
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

function line(level: LogLevel, component: string, msg: string, fields?: Record<string, unknown>): string {
  const body = mask(`${component ? `${component}: ` : ""}${msg}${formatFields(fields)}`);
  if (underSystemd()) return `<${SYSLOG_PRIORITY[level] ?? 6}>${body}\n`;
  return `${new Date().toISOString()} ${level.padEnd(5)} ${body}\n`;
}

let rootLevel: LogLevel = "info";

const RANK: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

export function setLogLevel(level: LogLevel): void {
  rootLevel = level;
}

export const isLogLevel = (s: string): s is LogLevel => (LOG_LEVELS as readonly string[]).includes(s);

export function createLogger(component: string): Logger {
  const at =
    (level: LogLevel) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      // stderr for every level: stdout belongs to command output (--json).
      if (RANK[level] <= RANK[rootLevel]) process.stderr.write(line(level, component, msg, fields));
    };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (sub) => createLogger(`${component}/${sub}`),
  };
}
