/**
 * The logging seam. Components that must stay testable (the core, backends,
 * the registry app) take a LogSink; src/log.ts provides the real one
 * (lines on stderr). Fields are structured; a secret is never passed (use shortKey).
 */
export interface LogSink {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Discards everything: for tests and for callers that have nothing to say. */
export const silentLogger: LogSink = { debug() {}, info() {}, warn() {}, error() {} };
