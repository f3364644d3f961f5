/**
 * Every command's flags fed invalid values (issue 14, acceptance 10): each
 * ends with exit 2 and one line naming the flag, before any I/O, and none
 * says "internal error". The table is keyed by the rule a flag has
 * (src/cli/flags.ts), so a new flag without a rule, or a rule without bad
 * samples here, fails this test.
 */
import { expect } from "chai";
import { PassThrough } from "node:stream";
import { main } from "../../src/cli/main.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { CHECKS, type ValueCheck } from "../../src/cli/flags.js";

async function run(argv: string[]): Promise<{ code: number; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = "";
  stderr.on("data", (d) => (err += String(d)));
  const stdin = new PassThrough();
  stdin.end();
  const code = await main(argv, { stdout, stderr, stdin, env: {} });
  return { code, err };
}

const BAD = new Map<ValueCheck, string[]>([
  [CHECKS.listen, ["999.1.1.1:80", "nowhere", "[::1]:0", "1.2.3.4:70000", "010.1.1.1:80", "[zz]:1"]],
  [CHECKS.path, [""]],
  [CHECKS.file, ["", "/nonexistent/scope.conf", "/"]],
  [CHECKS.pin, ["", "sha256/short", "md5/" + "A".repeat(44), "A".repeat(51)]],
  [CHECKS.sqliteSource, ["/tmp/x.db", "sqlite:", "sqlite:/nonexistent.db", "sqlite:/"]],
  [CHECKS.postgresUrl, ["mysql://h/db", "postgres://", "postgres://u:secret@h/db"]],
  [CHECKS.endpoint, ["hub.example:51820", "1.2.3.4", "1.2.3.4:0", "::1:51820", "[::1]:x"]],
  [CHECKS.role, ["admin", "Hub", ""]],
  [CHECKS.pskMode, ["on", ""]],
  [CHECKS.pskInterval, ["0s", "soon", "-1m", ""]],
  [CHECKS.secretFile, ["", "/nonexistent/token", "/"]],
  [CHECKS.url, ["ftp://reg", "http://", "reg:8470", "https://[::1"]],
  [CHECKS.network, ["Corp", "all", "a_b", "0123", "a-very-long-network-name"]],
  [CHECKS.peerName, ["-x", "", "a b", "x".repeat(64)]],
  [CHECKS.iface, ["a/b", "0123", "toolonginterface", "", "all"]],
  [CHECKS.cidr, ["10.0.0.0/33", "10.0.0.1/24", "10.0.0.0/31", "10.0.0.0/7", "x", "fd00::/64"]],
  [CHECKS.cidr6, ["fd00::/65", "x", "10.0.0.0/8", "fd00::1:2:3:4/48"]],
  [CHECKS.topology, ["star", ""]],
  [CHECKS.timers, ["slow", ""]],
  [CHECKS.backend, ["Wg!", "", "../x"]],
  [CHECKS.listenPort, ["0", "65535", "x", "-1", "1e3", ""]],
  [CHECKS.count, ["0", "101", "x", "-3"]],
  [CHECKS.uses, ["0", "x", "1.5", "100001"]],
  [CHECKS.expires, ["soon", "0", "400d", "-1h"]],
]);

/** A flag's rule, or undefined: the name of the rule in CHECKS. */
const ruleName = (check: ValueCheck): string =>
  Object.entries(CHECKS).find(([, c]) => c === check)?.[0] ?? "(not in CHECKS)";

describe("cli flag values (issue 14, acceptance 10)", () => {
  it("every string flag of every command has a rule, and every rule has bad samples here", () => {
    for (const c of COMMANDS) {
      for (const [name, spec] of Object.entries(c.options ?? {})) {
        if (spec.type !== "string") continue;
        const check = c.checks?.[name];
        expect(check, `scope ${c.name} --${name} has no rule (src/cli/flags.ts)`).to.be.a("function");
        expect(
          BAD.has(check as ValueCheck),
          `no bad samples for rule ${ruleName(check as ValueCheck)}`,
        ).to.equal(true);
      }
    }
  });

  for (const c of COMMANDS) {
    it(`scope ${c.name}: each invalid value exits 2 with one line naming the flag`, async () => {
      // Enough positionals that only the flag is wrong.
      const positionals = (c.positionals?.names ?? []).map((n) =>
        n === "REGISTRY_URL" ? "http://reg" : "corp",
      );
      let tried = 0;
      for (const [name, check] of Object.entries(c.checks ?? {})) {
        for (const bad of BAD.get(check) ?? []) {
          const argv = [...c.name.split(" "), ...positionals, `--${name}=${bad}`];
          const r = await run(argv);
          const what = `scope ${argv.join(" ")} → ${r.code} ${JSON.stringify(r.err)}`;
          expect(r.code, what).to.equal(2);
          expect(r.err.trimEnd().split("\n"), what).to.have.length(1);
          expect(r.err, what).to.match(new RegExp(`^scope: --${name} `));
          expect(r.err, what).not.to.include("internal error");
          tried++;
        }
      }
      expect(tried).to.be.at.least(Object.keys(c.checks ?? {}).length);
    });
  }

  it("checks positionals the same way (network names, the registry URL)", async () => {
    for (const argv of [
      ["network", "create", "Bad_Name", "--cidr", "10.0.0.0/16"],
      ["token", "create", "all"],
      ["peer", "list", "x/y"],
      ["join", "ftp://reg", "--network", "corp", "--token-file", "-"],
      // A replica list: every entry is checked.
      ["join", "https://a:8470,ftp://b", "--network", "corp", "--token-file", "-"],
    ]) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).to.equal(2);
      expect(r.err, argv.join(" ")).to.match(/^scope: (NAME|NETWORK|REGISTRY_URL) \S+: [^\n]+\n$/);
    }
  });

  it("refuses a replica list with one plain-http registry that is not loopback", async () => {
    const r = await run([
      "join",
      "https://a:8470,http://192.0.2.1:8470",
      "--network",
      "corp",
      "--token-file",
      "-",
    ]);
    expect(r.code).to.equal(2);
    expect(r.err).to.match(/https:\/\/ is required/);
  });

  it("prints the issue's own example exactly", async () => {
    const r = await run(["registry", "--listen", "999.1.1.1:80"]);
    expect(r).to.deep.equal({ code: 2, err: "scope: --listen 999.1.1.1:80: not an address\n" });
  });

  it("refuses a join token on argv with a hint, and never echoes it", async () => {
    for (const argv of [
      ["join", "http://reg", "--network", "corp", "--token", "scope_s3cr3t-token-value"],
      ["join", "http://reg", "--network", "corp", "--token=scope_s3cr3t-token-value"],
    ]) {
      const r = await run(argv);
      expect(r.code).to.equal(2);
      expect(r.err).to.match(/^scope: --token is refused: .*--token-file F, or - for stdin\n$/);
      expect(r.err).not.to.include("s3cr3t");
    }
  });
});
