/**
 * Where admin commands reach the registry: the local admin socket by default,
 * or --registry URL with the admin token from --token-file / SCOPE_ADMIN_TOKEN.
 */
import { existsSync, readFileSync } from "node:fs";
import { AdminClient } from "../../client/admin-client.js";
import { loadTrust } from "../../client/tls.js";
import { ScopeError } from "../../core/errors.js";
import type { CommandIO, OptionSpecs, ParsedArgs } from "../command.js";
import { CHECKS, type ValueCheck } from "../flags.js";

export const DEFAULT_ADMIN_SOCKET = "/run/scope/registry.sock";
/** Where a registry without the package's tmpfiles link (DEFAULT_ADMIN_SOCKET → here) listens. */
const REGISTRY_ADMIN_SOCKET = "/run/scope/registry/admin.sock";
const defaultSocket = (): string =>
  existsSync(DEFAULT_ADMIN_SOCKET) || !existsSync(REGISTRY_ADMIN_SOCKET)
    ? DEFAULT_ADMIN_SOCKET
    : REGISTRY_ADMIN_SOCKET;

export const ADMIN_OPTIONS: OptionSpecs = {
  socket: { type: "string" },
  registry: { type: "string" },
  "token-file": { type: "string" },
  "ca-file": { type: "string" },
};

export const ADMIN_CHECKS: Record<string, ValueCheck> = {
  socket: CHECKS.path,
  registry: CHECKS.url,
  "token-file": CHECKS.file,
  "ca-file": CHECKS.file,
};

export const ADMIN_HELP = [
  `      --socket PATH       admin socket (default ${DEFAULT_ADMIN_SOCKET})`,
  "      --registry URL      remote registry instead of the socket; needs the admin token",
  "      --token-file FILE   admin token (or SCOPE_ADMIN_TOKEN in the environment)",
  "      --ca-file PEM       CA that signed the registry's certificate (https:// only; the token",
  "                          never goes over plain http except to a loopback address)",
].join("\n");

function readTokenFile(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new ScopeError(
      "usage",
      `--token-file ${path}: ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`,
    );
  }
}

export function adminClient(args: ParsedArgs, io: CommandIO): AdminClient {
  const { socket, registry, "token-file": tokenFile } = args.values;
  if (typeof registry === "string") {
    const token = typeof tokenFile === "string" ? readTokenFile(tokenFile) : io.env.SCOPE_ADMIN_TOKEN;
    if (!token)
      throw new ScopeError(
        "usage",
        "--registry needs the admin token: --token-file FILE or SCOPE_ADMIN_TOKEN",
      );
    const caFile = args.values["ca-file"];
    const tls = typeof caFile === "string" ? loadTrust({ caFile }) : undefined;
    return new AdminClient({ url: registry, token, ...(tls ? { tls } : {}) });
  }
  return new AdminClient({ socketPath: typeof socket === "string" ? socket : defaultSocket() });
}
