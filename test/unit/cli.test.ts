import { expect } from "chai";
import { PassThrough } from "node:stream";
import { main } from "../../src/cli/main.js";
import { COMMANDS } from "../../src/cli/commands/index.js";

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d) => (out += String(d)));
  stderr.on("data", (d) => (err += String(d)));
  const code = await main(argv, { stdout, stderr, stdin: new PassThrough(), env: {} });
  return { code, out, err };
}

describe("cli", () => {
  it("prints help and version", async () => {
    const help = await run("--help");
    expect(help.code).to.equal(0);
    for (const c of COMMANDS) expect(help.out).to.include(c.name);
    expect((await run("--version")).out).to.match(/^scope \d+\.\d+\.\d+\n$/);
  });

  it("has --help on every command", async () => {
    for (const c of COMMANDS) {
      const r = await run(...c.name.split(" "), "--help");
      expect(r.code, c.name).to.equal(0);
      expect(r.out, c.name).to.include(`Usage: scope ${c.usage}`);
    }
  });

  const usage: [string, string[], RegExp][] = [
    ["unknown command", ["frobnicate"], /^scope: unknown command 'frobnicate'/],
    ["bad flag", ["check", "--nope"], /^scope: Unknown option '--nope'/],
    ["missing option value", ["check", "--config"], /^scope: Option '-c, --config <value>' argument missing/],
    ["extra positional", ["check", "x"], /^scope: unexpected argument 'x'/],
    ["bad log level", ["check", "--log-level", "loud", "--config", "/x"], /^scope: --log-level must be/],
    ["psk without an interface", ["psk"], /^scope: --interface IF is required/],
    [
      "psk with a bad interval",
      ["psk", "--interface", "wg0", "--interval", "soon"],
      /^scope: --interval soon: /,
    ],
    [
      "join with a bad --psk",
      ["join", "http://r:8470", "--network", "n", "--psk", "maybe"],
      /^scope: --psk maybe: /,
    ],
  ];
  for (const [what, argv, want] of usage) {
    it(`exits 2 with one line on ${what}`, async () => {
      const r = await run(...argv);
      expect(r.code).to.equal(2);
      expect(r.err).to.match(want);
      expect(r.err.trimEnd().split("\n")).to.have.length(1);
      expect(r.err).to.not.match(/\bat .*\.js:\d+/);
    });
  }

  it("exits 2 naming file:line for a bad config", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const dir = mkdtempSync("/tmp/scope-cli-");
    writeFileSync(`${dir}/r.conf`, "[registry]\n\nlisten = nowhere\n");
    const r = await run("check", "--config", `${dir}/r.conf`).finally(() =>
      rmSync(dir, { recursive: true, force: true }),
    );
    expect(r.code).to.equal(2);
    expect(r.err).to.match(new RegExp(`^scope: ${dir}/r.conf:3: listen: expected ADDR:PORT`));
  });
});
