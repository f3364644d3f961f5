import { expect } from "chai";
import { readFileSync } from "node:fs";
import { Variant } from "dbus-next";
import {
  SCOPE1_PATH,
  Scope1Interface,
  exportScope1,
  scope1BusName,
  type Scope1Provider,
} from "../../../dbus/scope1.js";
import { ScopeError } from "../../../src/core/errors.js";
import { ALICE } from "../networkd/fixtures.js";

function provider(over: Partial<Scope1Provider> = {}): Scope1Provider & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    status: () => ({
      network: "corp",
      state: "running",
      paused: false,
      interface: "scope0",
      addresses: ["10.88.0.5/16"],
    }),
    peers: () => [
      {
        publicKey: ALICE,
        name: "alice",
        path: "direct",
        endpoint: "203.0.113.7:51820",
        latencyMs: 12.5,
        lastHandshakeMs: 1_700_000_000_000,
        rxBytes: 10,
        txBytes: 20,
      },
      { publicKey: ALICE, path: "none" },
    ],
    pause: async () => void calls.push("pause"),
    resume: async () => void calls.push("resume"),
    ...over,
  };
}

const sigs = (d: Record<string, Variant>) =>
  Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.signature]));

describe("dbus: cc.ltgc.Scope1", () => {
  it("bus names per network follow D-Bus name rules", () => {
    expect(scope1BusName("corp")).to.equal("cc.ltgc.Scope1.corp");
    expect(scope1BusName("eu-west")).to.equal("cc.ltgc.Scope1.eu_west");
    expect(scope1BusName("1corp")).to.equal("cc.ltgc.Scope1._1corp");
  });

  it("GetStatus and GetPeers: typed dictionaries, uint64 as BigInt, absent keys left out", () => {
    const iface = new Scope1Interface(provider());
    expect(sigs(iface.GetStatus())).to.deep.equal({
      network: "s",
      state: "s",
      paused: "b",
      addresses: "as",
      interface: "s",
    });
    const [full, bare] = iface.GetPeers();
    expect(sigs(full!)).to.deep.equal({
      "public-key": "s",
      path: "s",
      name: "s",
      endpoint: "s",
      "latency-ms": "d",
      "last-handshake-ms": "t",
      "rx-bytes": "t",
      "tx-bytes": "t",
    });
    expect(full!["rx-bytes"]!.value).to.equal(10n);
    expect(Object.keys(bare!)).to.deep.equal(["public-key", "path"]);
  });

  it("Pause/Resume call the provider; a refusal becomes a D-Bus error with Scope's name", async () => {
    const p = provider();
    const iface = new Scope1Interface(p);
    await iface.Pause();
    await iface.Resume();
    expect(p.calls).to.deep.equal(["pause", "resume"]);
    const refusing = new Scope1Interface(
      provider({ pause: async () => Promise.reject(new ScopeError("forbidden", "not for you")) }),
    );
    const err = (await refusing.Pause().catch((e: unknown) => e)) as { type: string; text: string };
    expect(err.type).to.equal("cc.ltgc.Scope1.Error.PermissionDenied");
    expect(err.text).to.equal("Pause: not for you");
  });

  it("exportScope1 exports the object and takes the name without queueing", async () => {
    const log: string[] = [];
    const bus = {
      export: (path: string) => log.push(`export ${path}`),
      unexport: (path: string) => log.push(`unexport ${path}`),
      requestName: async (name: string, flags: number) => (log.push(`requestName ${name} ${flags}`), 1),
      releaseName: async (name: string) => (log.push(`releaseName ${name}`), 1),
    };
    const e = await exportScope1(bus as never, "corp", provider());
    await e.close();
    expect(log).to.deep.equal([
      `export ${SCOPE1_PATH}`,
      "requestName cc.ltgc.Scope1.corp 4",
      `unexport ${SCOPE1_PATH}`,
      "releaseName cc.ltgc.Scope1.corp",
    ]);
    bus.requestName = async () => 3; // EXISTS
    expect(
      ((await exportScope1(bus as never, "corp", provider()).catch((x: unknown) => x)) as Error).message,
    ).to.match(/is taken/);
  });

  it("the bus policy lets everyone read and only root or group scope pause/resume", () => {
    const conf = readFileSync(new URL("../../../../dbus/cc.ltgc.Scope1.conf", import.meta.url), "utf8");
    const policy = (attr: string) => conf.split(`<policy ${attr}>`)[1]!.split("</policy>")[0]!;
    const rules = (text: string) =>
      [...text.matchAll(/<(allow|deny) ([^/]*)\/>/g)].map((m) => `${m[1]} ${m[2]!.trim()}`);
    expect(rules(policy('context="default"'))).to.deep.equal([
      'deny own_prefix="cc.ltgc.Scope1"',
      'allow send_interface="cc.ltgc.Scope1" send_member="GetStatus"',
      'allow send_interface="cc.ltgc.Scope1" send_member="GetPeers"',
      'deny send_interface="cc.ltgc.Scope1" send_member="Pause"',
      'deny send_interface="cc.ltgc.Scope1" send_member="Resume"',
    ]);
    expect(rules(policy('group="scope"'))).to.deep.equal([
      'allow send_interface="cc.ltgc.Scope1" send_member="Pause"',
      'allow send_interface="cc.ltgc.Scope1" send_member="Resume"',
    ]);
    expect(rules(policy('user="root"'))).to.include('allow own_prefix="cc.ltgc.Scope1"');
  });
});
