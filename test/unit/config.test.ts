import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAnyConfig, loadEdgeConfig, loadRegistryConfig } from "../../src/config/load.js";
import { ScopeError } from "../../src/core/errors.js";

const dir = mkdtempSync(join(tmpdir(), "scope-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string): string {
  const p = join(dir, `c${n++}.conf`);
  writeFileSync(p, text);
  return p;
}

function failure(fn: () => unknown): ScopeError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(ScopeError);
    return e as ScopeError;
  }
  throw new Error("expected a ScopeError");
}

const EDGE = `[registry]
url = https://reg.example:8470
[network]
name = corp
[identity]
key_file = /var/lib/scope/corp/identity.key
[wireguard]
private_key_file = /var/lib/scope/corp/wg.key
`;

describe("config", () => {
  it("fills registry defaults from an empty file", () => {
    const c = loadRegistryConfig(file(""));
    expect(c.registry.listen).to.equal("[::]:8470");
    expect(c.registry.data).to.equal("/var/lib/scope/registry");
    expect(c.registry.event_retention).to.equal(86400);
    expect(c.log.level).to.equal("info");
  });

  it("reads edge config with coerced numbers and defaults", () => {
    const c = loadEdgeConfig(file(EDGE + "listen_port = 51900\n"));
    expect(c.wireguard.listen_port).to.equal(51900);
    expect(c.wireguard.interface).to.equal("scope0");
    expect(c.daemon.timers).to.equal("fast");
    expect(c.backend.type).to.equal("auto");
  });

  it("passes unknown [backend] keys through as plugin options", () => {
    const c = loadEdgeConfig(file(EDGE + "[backend]\ntype = networkd\nroute_table = 100\n"));
    expect(c.backend).to.deep.equal({ type: "networkd", route_table: "100" });
  });

  const bad: [string, string, RegExp][] = [
    [
      "unknown key",
      "[registry]\nlisten = [::]:8470\nlisen = 1\n",
      /:3: unknown key "lisen" in \[registry\]$/,
    ],
    ["unknown section", "[log]\nlevel = info\n[regsitry]\n", /:3: unknown section \[regsitry\]$/],
    ["bad port", "[registry]\nlisten = 0.0.0.0:70000\n", /:2: listen: port must be 1-65535$/],
    [
      "a leading zero (src/core/ip.ts)",
      "[registry]\nlisten = 010.1.1.1:8470\n",
      /:2: listen: not an address$/,
    ],
    ["bad level", "[log]\nlevel = loud\n", /:2: level: /],
    ["relative path", "[registry]\ndata = var/lib\n", /:2: data: must be an absolute path$/],
    ["bad duration", "[registry]\nevent_retention = soon\n", /:2: event_retention: expected a duration/],
    ["not key=value", "[registry]\nlisten\n", /:2: expected "key = value"/],
    ["key outside section", "listen = 1\n", /:1: key outside of any \[section\]$/],
    ["duplicate key", "[log]\nlevel = info\nlevel = debug\n", /:3: duplicate key "level" in \[log\]$/],
  ];
  for (const [what, text, want] of bad) {
    it(`rejects ${what} with file:line`, () => {
      const e = failure(() => loadRegistryConfig(file(text)));
      expect(e.code).to.equal("config");
      expect(e.exitCode).to.equal(2);
      expect(e.oneLine()).to.match(want);
      expect(e.oneLine()).to.not.include("\n");
    });
  }

  it("names a missing required key and section", () => {
    expect(failure(() => loadEdgeConfig(file(EDGE.replace("name = corp\n", "")))).oneLine()).to.match(
      /:3: missing key "name" in \[network\]$/,
    );
    expect(failure(() => loadEdgeConfig(file("[registry]\nurl = http://r:1\n"))).oneLine()).to.match(
      /missing section \[network\]$/,
    );
  });

  it("reports an unreadable file without a stack", () => {
    const e = failure(() => loadAnyConfig(join(dir, "absent.conf")));
    expect(e.oneLine()).to.match(/absent\.conf: cannot read config: no such file$/);
  });

  it("tells the file kind apart", () => {
    expect(loadAnyConfig(file(EDGE)).kind).to.equal("edge");
    expect(loadAnyConfig(file("[registry]\n")).kind).to.equal("registry");
  });
});
