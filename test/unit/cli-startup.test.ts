/**
 * What a `scope` start loads (issue 9: node and module start-up is most of a
 * join): the CLI and the daemon never load the registry's server packages or
 * D-Bus before they need them, bundled or not; and main.ts takes the bundle
 * only while it matches the modules it was built from.
 */
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freshBundle, STAMP_FILE } from "../../src/cli/main.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const HOOKS = fileURLToPath(new URL("./helpers/loaded-modules.js", import.meta.url));
/** Packages a CLI or daemon start must not load (the registry server's and D-Bus's). */
const HEAVY = /\/node_modules\/(koa|@koa\/router|pg|better-sqlite3|dbus-next|rate-limiter-flexible)\//;

function loaded(args: string[], env: NodeJS.ProcessEnv = {}): string[] {
  const r = spawnSync(process.execPath, ["--import", HOOKS, MAIN, ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  expect(r.status, r.stderr).to.equal(0);
  return r.stderr
    .split("\n")
    .filter((l) => l.startsWith("LOADED "))
    .map((l) => l.slice(7));
}

describe("scope start-up", function () {
  this.timeout(20_000);

  for (const [how, env] of [
    ["from the modules", { SCOPE_NO_BUNDLE: "1" }],
    ["as built (the bundle when fresh)", {}],
  ] as const) {
    it(`${how}: --version and daemon --help load no registry server package and no D-Bus`, () => {
      for (const args of [["--version"], ["daemon", "--help"], ["join", "--help"]]) {
        const urls = loaded(args, env);
        expect(urls.length, args.join(" ")).to.be.above(3);
        const bundled = urls.some((u) => u.includes("/dist/src/bundle/"));
        expect(bundled, args.join(" ")).to.equal(how !== "from the modules" && freshBundle() !== undefined);
        expect(
          urls.filter((u) => HEAVY.test(u)),
          args.join(" "),
        ).to.deep.equal([]);
      }
    });
  }

  describe("freshBundle", () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "scope-bundle-"))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const url = (): URL => pathToFileURL(`${dir}/`);
    function stamp(sealed?: boolean): void {
      writeFileSync(join(dir, "input.js"), "export const x = 1;\n");
      utimesSync(join(dir, "input.js"), 1_000, 1_000);
      writeFileSync(
        join(dir, STAMP_FILE),
        JSON.stringify({
          entry: "cli.js",
          inputs: { "input.js": [20, 1_000_000] },
          ...(sealed && { sealed }),
        }),
      );
    }

    it("names the entry while every input has its size and mtime", () => {
      stamp();
      expect(freshBundle(url())?.href).to.equal(new URL("cli.js", url()).href);
    });

    it("is stale once an input was rewritten (a tsc after the bundle), or is gone", () => {
      stamp();
      writeFileSync(join(dir, "input.js"), "export const x = 2;\n");
      expect(freshBundle(url())).to.equal(undefined);
      rmSync(join(dir, "input.js"));
      expect(freshBundle(url())).to.equal(undefined);
    });

    it("a sealed stamp (an installed package) is not checked; no stamp, no bundle", () => {
      stamp(true);
      writeFileSync(join(dir, "input.js"), "changed");
      expect(freshBundle(url())?.href).to.equal(new URL("cli.js", url()).href);
      rmSync(join(dir, STAMP_FILE));
      expect(freshBundle(url())).to.equal(undefined);
    });
  });
});
