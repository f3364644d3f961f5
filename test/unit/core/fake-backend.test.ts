import { expect } from "chai";
import { FakeBackend } from "../../../src/core/fake-backend.js";

const desired = (endpoint?: string) => ({
  iface: { name: "scope0", privateKey: "SECRET-private-key", listenPort: 51820, addresses: ["10.88.0.2/16"] },
  peers: [
    {
      publicKey: "PEERKEY1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=",
      allowedIps: ["10.88.0.3/32"],
      persistentKeepalive: 25,
      presharedKey: "SECRET-psk",
      ...(endpoint ? { endpoint } : {}),
    },
  ],
});

describe("FakeBackend", () => {
  it("records applies as values and readable text, without secrets", async () => {
    const b = new FakeBackend();
    const first = await b.apply(desired());
    expect(first).to.deep.equal({ changes: ["add PEERKEY1"], created: true });
    const second = await b.apply(desired("198.51.100.3:51820"));
    expect(second.changes).to.deep.equal(["endpoint PEERKEY1 - => 198.51.100.3:51820"]);
    expect((await b.apply(desired("198.51.100.3:51820"))).changes).to.deep.equal([]);
    expect(b.applies).to.have.length(3);
    expect(b.log[1]).to.equal(
      "scope0 listen 51820 addresses 10.88.0.2/16\n" +
        "  peer PEERKEY1 endpoint 198.51.100.3:51820 allowed 10.88.0.3/32 keepalive 25 psk",
    );
    expect(b.log.join("\n")).to.not.include("SECRET");
  });

  it("reports the applied peers as stats without a device, fails an apply on request, follows pause and close", async () => {
    const b = new FakeBackend();
    expect(await b.stats()).to.deep.equal([]);
    b.failNextApply = new Error("busy");
    let failed: Error | undefined;
    await b.apply(desired()).catch((e: Error) => (failed = e));
    expect(failed?.message).to.equal("busy");
    await b.apply(desired("198.51.100.3:51820"));
    expect(await b.stats()).to.deep.equal([
      { publicKey: desired().peers[0]?.publicKey, endpoint: "198.51.100.3:51820", rxBytes: 0, txBytes: 0 },
    ]);
    const seen: boolean[] = [];
    const off = b.onActiveChange((a) => seen.push(a));
    b.setActive(false);
    b.setActive(false);
    b.setActive(true);
    off();
    b.setActive(false);
    expect(seen).to.deep.equal([false, true]);
    await b.triggerHandshake("K");
    expect(b.triggers).to.deep.equal(["K"]);
    await b.close({ remove: true });
    expect(b.closed).to.deep.equal({ remove: true });
    expect(await b.stats()).to.deep.equal([]);
  });
});
