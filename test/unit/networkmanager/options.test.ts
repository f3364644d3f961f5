import { expect } from "chai";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeNetworkManager } from "../../../dbus/fake-nm.js";
import { createNetworkManagerBackend } from "../../../plugins/networkmanager/index.js";
import { PROFILE_FILE, fileProfileStore, memoryProfileStore } from "../../../plugins/networkmanager/store.js";
import { ScopeError } from "../../../src/core/errors.js";
import { alice, context, mesh } from "../networkd/fixtures.js";

describe("networkmanager plugin options and state", () => {
  it("firewall-mark (or firewall_mark) becomes wireguard.fwmark; a bad value is a config error", async () => {
    const nm = new FakeNetworkManager();
    const backend = createNetworkManagerBackend(context({ firewall_mark: "51820" }), {
      bus: nm.factory,
      runner: nm.runner,
      store: memoryProfileStore(),
    });
    await backend.apply(mesh([alice]));
    expect(nm.describe("Scope corp")[1]).to.contain("fwmark=51820");
    await backend.close();
    const bad = () => createNetworkManagerBackend(context({ "firewall-mark": "0x10" }));
    expect(bad).to.throw(ScopeError, /firewall-mark must be 0..4294967295/);
  });

  it("the uuid file lives in the state directory, 0600, and goes away on clear", async () => {
    const dir = await mkdtemp(join(tmpdir(), "scope-nm-"));
    try {
      const store = fileProfileStore(join(dir, "corp"));
      expect(await store.load()).to.equal(undefined);
      await store.save("5c09e0c4-0000-4000-8000-000000000001");
      expect(await store.load()).to.equal("5c09e0c4-0000-4000-8000-000000000001");
      expect((await stat(join(dir, "corp", PROFILE_FILE))).mode & 0o777).to.equal(0o600);
      expect((await stat(join(dir, "corp"))).mode & 0o777).to.equal(0o700);
      await store.clear();
      expect(await store.load()).to.equal(undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
