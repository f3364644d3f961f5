/**
 * One error type per boundary, with a stable code. The code maps outward in
 * exactly one place each: HTTP status (registry error middleware), CLI exit
 * code (src/cli), log line. Messages are safe to show: they never carry a
 * secret.
 */
export const ERROR_CODES = {
  // usage and configuration: the caller can fix it; CLI exit 2
  usage: { status: 400, exit: 2 },
  config: { status: 400, exit: 2 },
  // request problems seen by the registry
  bad_request: { status: 400, exit: 1 },
  unauthorized: { status: 401, exit: 1 },
  forbidden: { status: 403, exit: 1 },
  not_found: { status: 404, exit: 1 },
  method_not_allowed: { status: 405, exit: 1 },
  conflict: { status: 409, exit: 1 },
  gone: { status: 410, exit: 1 },
  payload_too_large: { status: 413, exit: 1 },
  unsupported_media_type: { status: 415, exit: 1 },
  rate_limited: { status: 429, exit: 1 },
  // the token was valid once: expired or used up
  token_invalid: { status: 403, exit: 1 },
  replay: { status: 401, exit: 1 },
  address_exhausted: { status: 409, exit: 1 },
  // local runtime failures
  unavailable: { status: 503, exit: 1 },
  backend: { status: 500, exit: 1 },
  internal: { status: 500, exit: 1 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ScopeError extends Error {
  readonly code: ErrorCode;
  /** Where bad configuration or input came from, e.g. "/etc/scope/corp.conf:12". */
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { where?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ScopeError";
    this.code = code;
    this.where = options?.where;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  /** One line, as the CLI prints it: "FILE:LINE: message" when the place is known. */
  oneLine(): string {
    return this.where ? `${this.where}: ${this.message}` : this.message;
  }
}

export const isScopeError = (e: unknown): e is ScopeError => e instanceof ScopeError;
