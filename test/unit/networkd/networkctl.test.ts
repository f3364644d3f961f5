import { expect } from "chai";
import { Networkctl, parseListText } from "../../../networkd/networkctl.js";
import { RecordingRunner, fail, ok } from "../../../networkd/testing.js";

const STATUS_JSON = JSON.stringify({
  Index: 7,
  Name: "scope0",
  Kind: "wireguard",
  Type: "none",
  AdministrativeState: "configured",
  OperationalState: "routable",
  NetworkFile: "/etc/systemd/network/50-scope-corp.network",
  NetDevFile: "/etc/systemd/network/50-scope-corp.netdev",
});

describe("networkd networkctl", () => {
  it("reads networkctl status --json=short (systemd >= 250)", async () => {
    const runner = new RecordingRunner().on((c) => (c.args[0] === "status" ? ok(STATUS_JSON) : undefined));
    expect(await new Networkctl(runner).status("scope0")).to.deep.equal({
      name: "scope0",
      index: 7,
      kind: "wireguard",
      operationalState: "routable",
      administrativeState: "configured",
      networkFile: "/etc/systemd/network/50-scope-corp.network",
      netdevFile: "/etc/systemd/network/50-scope-corp.netdev",
    });
    expect(runner.lines()).to.deep.equal(["networkctl status scope0 --json=short --no-pager"]);
  });

  it("falls back to the text of `networkctl list` where --json is unknown", async () => {
    const table = "  1 lo     loopback carrier     unmanaged\n  7 scope0 none     routable    configured\n";
    const runner = new RecordingRunner().on((c) =>
      c.args.includes("--json=short")
        ? fail("networkctl: unrecognized option '--json=short'")
        : c.args[0] === "list"
          ? ok(table)
          : undefined,
    );
    expect(await new Networkctl(runner).status("scope0")).to.deep.equal({
      name: "scope0",
      index: 7,
      operationalState: "routable",
      administrativeState: "configured",
    });
    expect(parseListText(table).map((l) => l.name)).to.deep.equal(["lo", "scope0"]);
  });

  it("reads the Interfaces array of networkctl list --json", async () => {
    const runner = new RecordingRunner().on(() =>
      ok(JSON.stringify({ Interfaces: [{ Name: "lo", Index: 1 }] })),
    );
    expect(await new Networkctl(runner).list()).to.deep.equal([{ name: "lo", index: 1 }]);
  });

  it("status of an unknown link is undefined", async () => {
    const runner = new RecordingRunner().on(() => fail('Interface "nope" not found.'));
    expect(await new Networkctl(runner).status("nope")).to.equal(undefined);
  });

  it("detects whether systemd-networkd is active", async () => {
    const active = new RecordingRunner().on(() => ok("active\n"));
    expect(await new Networkctl(active).isActive()).to.deep.equal({
      active: true,
      detail: "systemd-networkd is active",
    });
    const inactive = new RecordingRunner().on(() => ({ code: 3, stdout: "inactive\n", stderr: "" }));
    expect(await new Networkctl(inactive).isActive()).to.deep.equal({
      active: false,
      detail: "systemd-networkd is inactive",
    });
    const missing = { run: () => Promise.reject(new Error("spawn systemctl ENOENT")) };
    expect((await new Networkctl(missing).isActive()).detail).to.match(/ENOENT/);
  });

  it("reads the systemd version and throws with stderr when reload fails", async () => {
    const runner = new RecordingRunner().on((c) =>
      c.args[0] === "--version"
        ? ok("systemd 257 (257.4-1)\n+PAM\n")
        : fail("Failed to reload: Access denied"),
    );
    const n = new Networkctl(runner);
    expect(await n.version()).to.equal(257);
    let err: Error | undefined;
    await n.reload().catch((e: Error) => (err = e));
    expect(err?.message).to.equal("networkctl reload: exit 1: Failed to reload: Access denied");
  });
});
