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
    const at = (url: string) => ({ url });
    expect(l.current).to.deep.equal(at("http://a"));
    expect(l.failed(at("http://b"))).to.equal(false); // not the current one: no move
    expect(l.failed(at("http://a"))).to.equal(true);
    expect(l.failed(at("http://a"))).to.equal(false); // a second request that failed on a
    expect(l.current).to.deep.equal(at("http://b"));
    l.failed(at("http://b"));
    l.failed(at("http://c"));
    expect(l.current).to.deep.equal(at("http://a"));
    expect(new RegistryList("http://a").failed(at("http://a"))).to.equal(false);
  });

  it("a DNS name with several addresses is one registry per address, in the resolver's order", async () => {
    const asked: string[] = [];
    const zone: Record<string, string[]> = {
      "reg.example": ["192.0.2.1", "2001:db8::1", "192.0.2.1"],
      "down.example": [],
    };
    const resolve = (host: string) => {
      asked.push(host);
      const a = zone[host];
      return a ? Promise.resolve(a) : Promise.reject(new Error("ENOTFOUND"));
    };
    const l = new RegistryList(
      "https://reg.example:8470, https://192.0.2.9:8470, https://down.example, https://gone.example",
      resolve,
    );
    await l.resolveNames();
    await l.resolveNames(); // once, not per request
    expect(asked).to.deep.equal(["reg.example", "down.example", "gone.example"]); // never an IP literal
    expect(l.all).to.deep.equal([
      { url: "https://reg.example:8470", address: "192.0.2.1" },
      { url: "https://reg.example:8470", address: "2001:db8::1" },
      { url: "https://192.0.2.9:8470" },
      // No address: left to the connect, which then says why.
      { url: "https://down.example" },
      { url: "https://gone.example" },
    ]);
    expect(l.current).to.deep.equal({ url: "https://reg.example:8470", address: "192.0.2.1" });
    expect(l.failed(l.current)).to.equal(true);
    expect(l.current).to.deep.equal({ url: "https://reg.example:8470", address: "2001:db8::1" });
  });

  it("keeps the registry in use across a new resolution, and resolves again after a wrap-around", async () => {
    let addresses = ["192.0.2.1", "192.0.2.2"];
    let lookups = 0;
    const l = new RegistryList("http://a.example, http://b.example", (host) => {
      lookups++;
      return Promise.resolve(host === "a.example" ? addresses : ["192.0.2.9"]);
    });
    l.failed(l.current); // a.example failed before any resolution: on to b.example
    await l.resolveNames();
    expect(l.current).to.deep.equal({ url: "http://b.example", address: "192.0.2.9" });
    addresses = ["192.0.2.3"];
    l.failed(l.current); // wraps: names are resolved again
    await l.resolveNames();
    expect(lookups).to.equal(4);
    expect(l.all.map((c) => c.address)).to.deep.equal(["192.0.2.3", "192.0.2.9"]);
    expect(l.current).to.deep.equal({ url: "http://a.example", address: "192.0.2.3" });
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
