/**
 * Loads a config file against its schema. Errors are ScopeError("config")
 * with FILE:LINE of the offending key (or section), one line, exit 2.
 */
import type { z } from "zod";
import { ScopeError } from "../core/errors.js";
import { parseIni, readIni, where, type IniFile } from "./ini-file.js";
import { EdgeConfig, RegistryConfig } from "./schema.js";

export function validateIni<S extends z.ZodType>(file: IniFile, schema: S): z.infer<S> {
  const result = schema.safeParse(file.sections);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const [section, key] = issue.path.map(String);
  let message: string;
  if (issue.code === "unrecognized_keys") {
    const name = issue.keys[0];
    message = section === undefined ? `unknown section [${name}]` : `unknown key "${name}" in [${section}]`;
    throw new ScopeError("config", message, {
      where: section === undefined ? where(file, name) : where(file, section, name),
    });
  }
  if (section !== undefined && key === undefined && !(section in file.sections)) {
    message = `missing section [${section}]`;
  } else if (key !== undefined && file.sections[section]?.[key] === undefined) {
    message = `missing key "${key}" in [${section}]`;
  } else {
    message = key === undefined ? `[${section}]: ${issue.message}` : `${key}: ${issue.message}`;
  }
  throw new ScopeError("config", message, {
    where: section === undefined ? file.path : where(file, section, key),
  });
}

export const loadRegistryConfig = (path: string): RegistryConfig =>
  validateIni(readIni(path), RegistryConfig);
export const loadEdgeConfig = (path: string): EdgeConfig => validateIni(readIni(path), EdgeConfig);
/** The same for text about to be written to path (errors name path). */
export const parseEdgeConfig = (path: string, text: string): EdgeConfig =>
  validateIni(parseIni(path, text), EdgeConfig);

/** Used by `scope check`: a file's kind from its sections. */
export function loadAnyConfig(path: string): {
  kind: "registry" | "edge";
  config: RegistryConfig | EdgeConfig;
} {
  const file = readIni(path);
  if ("network" in file.sections || "wireguard" in file.sections)
    return { kind: "edge", config: validateIni(file, EdgeConfig) };
  return { kind: "registry", config: validateIni(file, RegistryConfig) };
}
