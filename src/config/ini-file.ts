/**
 * Reads an INI file with npm's `ini` parser and remembers where each section
 * and key stands, so a validation error can name FILE:LINE. `ini` itself
 * knows no line numbers; a small scanner over the same text finds them.
 */
import { readFileSync } from "node:fs";
import ini from "ini";
import { ScopeError } from "../core/errors.js";

export type IniSections = Record<string, Record<string, unknown>>;

export interface IniFile {
  path: string;
  sections: IniSections;
  /** "section.key" or "section" → 1-based line. */
  lines: Map<string, number>;
}

export function where(file: IniFile, section: string, key?: string): string {
  const line = (key !== undefined && file.lines.get(`${section}.${key}`)) || file.lines.get(section);
  return line ? `${file.path}:${line}` : file.path;
}

export function parseIni(path: string, text: string): IniFile {
  const lines = new Map<string, number>();
  let section = "";
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) return;
    const header = /^\[([^\]]*)\]$/.exec(line);
    if (header) {
      section = header[1].trim();
      if (!lines.has(section)) lines.set(section, i + 1);
      return;
    }
    const eq = line.indexOf("=");
    if (eq <= 0)
      throw new ScopeError("config", `expected "key = value", got ${JSON.stringify(line.slice(0, 40))}`, {
        where: `${path}:${i + 1}`,
      });
    if (section === "")
      throw new ScopeError("config", "key outside of any [section]", { where: `${path}:${i + 1}` });
    const key = line.slice(0, eq).trim();
    if (lines.has(`${section}.${key}`))
      throw new ScopeError("config", `duplicate key "${key}" in [${section}]`, { where: `${path}:${i + 1}` });
    lines.set(`${section}.${key}`, i + 1);
  });
  const parsed = ini.parse(text) as Record<string, unknown>;
  const sections: IniSections = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value !== "object" || value === null) continue; // top-level keys were rejected above
    sections[name] = value as Record<string, unknown>;
  }
  return { path, sections, lines };
}

export function readIni(path: string): IniFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(code ?? e);
    throw new ScopeError("config", `cannot read config: ${why}`, { where: path });
  }
  return parseIni(path, text);
}
