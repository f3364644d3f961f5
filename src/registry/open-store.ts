/**
 * The store registry.conf asks for: SQLite under the data dir (the default),
 * or PostgreSQL from `[store] url` / `url_file` (a file keeps a password off
 * the config and out of the logs).
 */
import { readFileSync } from "node:fs";
import type { RegistryConfig } from "../config/schema.js";
import { ScopeError } from "../core/errors.js";
import type { LogSink } from "../core/logger.js";
import { registerSecret } from "../log.js";
import type { Store } from "./store.js";

/** The PostgreSQL URL of the config, or a one-line config error. */
export function postgresUrl(c: RegistryConfig["store"]): string {
  if (c.url && c.url_file) throw new ScopeError("config", "[store] has both url and url_file: keep one");
  const url = c.url ?? (c.url_file ? readFileSync(c.url_file, "utf8").trim() : undefined);
  if (!url) throw new ScopeError("config", "[store] kind = postgres needs url or url_file");
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new ScopeError("config", `${c.url_file ?? "url"}: expected postgres://…`);
  const password = /^postgres(?:ql)?:\/\/[^:@/]*:([^@/]*)@/.exec(url)?.[1];
  if (password) registerSecret(decodeURIComponent(password));
  return url;
}

export async function openStore(config: RegistryConfig, sqliteFile: string, log: LogSink): Promise<Store> {
  if (config.store.kind === "postgres") {
    const { PgStore } = await import("./pg-store.js");
    return PgStore.open(postgresUrl(config.store), log);
  }
  const { SqliteStore } = await import("./sqlite-store.js");
  return new SqliteStore(sqliteFile);
}
