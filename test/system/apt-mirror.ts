// The debootstrap mirror is whatever Debian archive the host already uses: a CI
// machine behind a proxy or an internal mirror then works unchanged, and no
// mirror host name is ever baked into the repo.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
}

/** Parse deb822 `.sources` text into its stanzas (blank-line separated, `#` comments). */
export function parseDeb822(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = "";
    for (const raw of stanza.split("\n")) {
      if (raw.startsWith("#") || raw.trim() === "") continue;
      if (/^\s/.test(raw) && last) {
        fields.set(last, `${fields.get(last) ?? ""} ${raw.trim()}`); // folded continuation line
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    if (fields.get("enabled")?.toLowerCase() === "no") continue;
    const list = (k: string): string[] => (fields.get(k) ?? "").split(/\s+/).filter(Boolean);
    if (fields.has("uris")) {
      sources.push({
        types: list("types"),
        uris: list("uris"),
        suites: list("suites"),
        components: list("components"),
      });
    }
  }
  return sources;
}

/** Parse one-line-style `sources.list` text (`deb [opts] URI SUITE COMPONENTS...`). */
export function parseOneLine(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw
      .replace(/#.*/, "")
      .replace(/\[[^\]]*\]/, "")
      .trim();
    const [type, uri, suite, ...components] = line.split(/\s+/);
    if (type && uri && suite) sources.push({ types: [type], uris: [uri], suites: [suite], components });
  }
  return sources;
}

// Plain Debian release suites: third-party repos (e.g. "nodistro") and Ubuntu
// archives never carry these, so matching them singles out the Debian archive.
const DEBIAN_SUITE =
  /^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)$/;

/**
 * The main Debian archive among the sources: a binary (`deb`) source with a plain
 * Debian release suite (not -security/-updates/-backports) that carries `main`.
 */
export function pickDebianArchive(sources: AptSource[]): string | undefined {
  const plainSuite = (s: string): boolean => DEBIAN_SUITE.test(s);
  const ok = sources.find(
    (s) =>
      s.types.includes("deb") &&
      s.components.includes("main") &&
      s.suites.some(plainSuite) &&
      s.uris.some((u) => /^(https?|file):/.test(u) && !/security/.test(u)),
  );
  return ok?.uris.find((u) => /^(https?|file):/.test(u) && !/security/.test(u));
}

/** Mirror from the host's apt configuration; SCOPE_SYSTEM_MIRROR overrides it. */
export function hostDebianMirror(etc = "/etc/apt"): string {
  if (process.env.SCOPE_SYSTEM_MIRROR) return process.env.SCOPE_SYSTEM_MIRROR;
  const dir = join(etc, "sources.list.d");
  const deb822 = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith(".sources"))
        .sort()
        .flatMap((f) => parseDeb822(readFileSync(join(dir, f), "utf8")))
    : [];
  const list = join(etc, "sources.list");
  const oneLine = existsSync(list) ? parseOneLine(readFileSync(list, "utf8")) : [];
  const mirror = pickDebianArchive(deb822) ?? pickDebianArchive(oneLine);
  if (!mirror) {
    throw new Error(
      `system tests: no Debian archive found in ${dir}/*.sources or ${list}; set SCOPE_SYSTEM_MIRROR to a Debian mirror URL`,
    );
  }
  return mirror;
}
