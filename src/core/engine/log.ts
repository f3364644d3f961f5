import type { EngineEffect, LogLevel } from "./types.js";

/** A log effect: the engine never logs by itself. */
export const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): EngineEffect => ({
  type: "log",
  level,
  msg,
  ...(fields ? { fields } : {}),
});
