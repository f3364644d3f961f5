import { expect } from "chai";
import { RegistryList, registryUrls } from "../../src/client/registry-list.js";
import { EdgeConfig } from "../../src/config/schema.js";

describe("client/registry-list", () => {
  it("reads one URL or a comma-separated list", () => {
    expect(registryUrls("https://a:8470")).to.deep.equal(["https://a:8470"]);
    expect(registryUrls(" https://a:8470 , https://b:8470,")).to.deep.equal([
      "https://a:8470",
      "https://b:8470",
    ]);
  });

  it("moves on only when the current registry fails, once for failures seen together, and wraps", () => {
    const l = new RegistryList("http://a, http://b, http://c");
    expect(l.current).to.equal("http://a");
    expect(l.failed("http://b")).to.equal(false); // not the current one: no move
    expect(l.failed("http://a")).to.equal(true);
    expect(l.failed("http://a")).to.equal(false); // a second request that failed on a
    expect(l.current).to.equal("http://b");
    l.failed("http://b");
    l.failed("http://c");
    expect(l.current).to.equal("http://a");
    expect(new RegistryList("http://a").failed("http://a")).to.equal(false);
  });

  it("NET.conf accepts a list and names a bad entry", () => {
    const base = {
      network: { name: "corp" },
      identity: { key_file: "/k" },
      wireguard: { private_key_file: "/w" },
    };
    expect(
      EdgeConfig.safeParse({ ...base, registry: { url: "https://a:8470, https://b:8470" } }).success,
    ).to.equal(true);
    const bad = EdgeConfig.safeParse({ ...base, registry: { url: "https://a:8470, ftp://b" } });
    expect(bad.success).to.equal(false);
    expect(bad.error?.issues[0]?.message).to.include("ftp://b");
  });
});
