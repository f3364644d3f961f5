/**
 * Where admin commands reach the registry: the local admin socket by default,
 * or --registry URL with the admin token from --token-file / SCOPE_ADMIN_TOKEN.
 */
import { readFileSync } from "node:fs";
import { AdminClient } from "../../client/admin-client.js";
import { ScopeError } from "../../core/errors.js";
import type { CommandIO, OptionSpecs, ParsedArgs } from "../command.js";
import { CHECKS, type ValueCheck } from "../flags.js";

export const DEFAULT_ADMIN_SOCKET = "/run/scope/registry.sock";

export const ADMIN_OPTIONS: OptionSpecs = {
  socket: { type: "string" },
  registry: { type: "string" },
  "token-file": { type: "string" },
};

export const ADMIN_CHECKS: Record<string, ValueCheck> = {
  socket: CHECKS.path,
  registry: CHECKS.url,
  "token-file": CHECKS.file,
};

export const ADMIN_HELP = [
  `      --socket PATH       admin socket (default ${DEFAULT_ADMIN_SOCKET})`,
  "      --registry URL      remote registry instead of the socket; needs the admin token",
  "      --token-file FILE   admin token (or SCOPE_ADMIN_TOKEN in the environment)",
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
    return new AdminClient({ url: registry, token });
  }
  return new AdminClient({ socketPath: typeof socket === "string" ? socket : DEFAULT_ADMIN_SOCKET });
}
