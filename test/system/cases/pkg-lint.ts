// The packages as files, on the host (no boot): issue 13's lintian/rpmlint
// requirement and acceptance 4 and 6. Builds the .deb and .rpm with
// packaging/build.sh, runs lintian and rpmlint with the overrides the
// repository carries (each with its reason), installs the .rpm into a scratch
// root and checks owners and modes of what it put there.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type HostCase } from "../case.js";
import { mustRun, repoRoot, run } from "../host.js";
import { buildPackages, kib } from "../packages.js";

/** Path -> "mode owner:group" that the .rpm must install (a sample of each kind). */
const WANT: Record<string, string> = {
  "/usr/bin/scope": "755 root:root",
  "/usr/lib/scope": "755 root:root",
  "/usr/lib/scope/package.json": "644 root:root",
  "/usr/lib/scope/dist/src/cli/main.js": "644 root:root",
  "/usr/lib/scope/node_modules/better-sqlite3/build/Release/better_sqlite3.node": "644 root:root",
  "/usr/lib/systemd/system/scope-registry.service": "644 root:root",
  "/usr/lib/systemd/system/scope@.service": "644 root:root",
  "/etc/scope": "755 root:root",
  "/etc/scope/registry.conf": "644 root:root",
  "/etc/scope/NET.conf.example": "644 root:root",
  "/usr/share/man/man8/scope.8.gz": "644 root:root",
  "/usr/share/bash-completion/completions/scope": "644 root:root",
  "/usr/share/dbus-1/system.d/cc.ltgc.Scope1.conf": "644 root:root",
  "/usr/lib/sysusers.d/scope.conf": "644 root:root",
  "/usr/lib/tmpfiles.d/scope.conf": "644 root:root",
};

const pkgLint: HostCase = {
  name: "pkg-lint",
  description:
    "lintian and rpmlint clean (with written overrides); .rpm into a scratch root: owners, modes, conffiles",
  async run(dir) {
    const lines: string[] = [];
    const p = await buildPackages(join(dir, "build"), undefined, true);
    if (!p.rpm) throw new Error("no .rpm built");
    const lintian = await run("lintian", [
      "-I",
      "--pedantic",
      "--fail-on",
      "error,warning,info,pedantic",
      p.deb,
    ]);
    const tags = (lintian.stdout + lintian.stderr).split("\n").filter((l) => /^[EWIPX]: /.test(l));
    if (lintian.code !== 0 || tags.length) throw new Error(`lintian:\n${tags.join("\n") || lintian.stderr}`);
    lines.push("lintian -I --pedantic: no tag (overrides: packaging/deb/lintian-overrides)");
    const rc = join(repoRoot(), "packaging", "rpm");
    const lint = await run("rpmlint", [
      "-c",
      join(rc, "rpmlint.toml"),
      "-r",
      join(rc, "scope.rpmlintrc"),
      p.rpm,
    ]);
    const summary = /\d+ errors?, \d+ warnings?/.exec(lint.stdout)?.[0] ?? "?";
    if (lint.code !== 0 || summary !== "0 errors, 0 warnings")
      throw new Error(`rpmlint: ${summary}\n${lint.stdout}`);
    lines.push(`rpmlint: ${summary} (filters: packaging/rpm/scope.rpmlintrc)`);

    // Scratch root: no nodejs or systemd there, so --nodeps and --noscripts;
    // the scriptlets are checked by reading them (below), not by running them.
    const root = join(dir, "rpmroot");
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    await mustRun("rpm", ["--root", root, "--initdb"]);
    await mustRun("rpm", ["--root", root, "-i", "--nodeps", "--noscripts", p.rpm]);
    const verify = await run("rpm", ["--root", root, "-V", "--nodeps", "--noscripts", "scope"]);
    if (verify.code !== 0) throw new Error(`rpm -V found differences:\n${verify.stdout}`);
    const stat = await mustRun("stat", ["-c", "%n %a %U:%G", ...Object.keys(WANT).map((f) => join(root, f))]);
    for (const l of stat.stdout.trim().split("\n")) {
      const [path, mode, owner] = l.split(" ");
      const rel = path!.slice(root.length);
      if (`${mode} ${owner}` !== WANT[rel]) throw new Error(`${rel}: ${mode} ${owner}, want ${WANT[rel]}`);
    }
    const odd = await mustRun("find", [
      root,
      "(",
      "-path",
      `${root}/var`,
      "-prune",
      ")",
      "-o",
      "(",
      "-not",
      "-user",
      "root",
      "-o",
      "-perm",
      "/022",
      "-not",
      "-type",
      "l",
      ")",
      "-print",
    ]);
    if (odd.stdout.trim()) throw new Error(`files not root-owned or group/world-writable:\n${odd.stdout}`);
    const conf = await mustRun("rpm", ["--root", root, "-qc", "scope"]);
    if (
      conf.stdout.trim().split("\n").sort().join(" ") !==
      "/etc/scope/NET.conf.example /etc/scope/registry.conf"
    )
      throw new Error(`config files: ${conf.stdout}`);
    const scripts = await mustRun("rpm", ["-qp", "--scripts", p.rpm]);
    for (const s of ["systemd-sysusers", "systemd-tmpfiles --create scope.conf", "try-restart"])
      if (!scripts.stdout.includes(s)) throw new Error(`rpm scriptlets lack ${s}`);
    const n = (await mustRun("rpm", ["--root", root, "-ql", "scope"])).stdout.trim().split("\n").length;
    lines.push(
      `rpm -i --root: ${n} paths, rpm -V clean, all root-owned, no group/world-writable file, ${Object.keys(WANT).length} modes checked, 2 %config(noreplace)`,
    );
    lines.push(
      "not verified by the scratch install: scriptlets (no systemd in the root), dependency resolution (--nodeps)",
    );
    lines.push(`sizes: .deb ${kib(p.deb)} KiB, .rpm ${kib(p.rpm)} KiB, installed ${p.installedKiB} KiB`);
    return lines;
  },
};
export default pkgLint;
