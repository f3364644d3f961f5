import { expect } from "chai";
import { createNetworkdBackend, plugin } from "../../../plugins/networkd/index.js";
import { FakeWorld } from "./fake-world.js";
import { ALICE, BOB, HUB, PSK_ALICE_NEXT, SECRETS, alice, bob, context, hub, mesh } from "./fixtures.js";

const DIR = "/etc/systemd/network";
const NETDEV = `${DIR}/50-scope-corp.netdev`;

function setup(options: Record<string, string> = {}) {
  const world = new FakeWorld();
  const ctx = context(options);
  const backend = createNetworkdBackend(ctx, { fs: world.fs, runner: world.runner, groupFile: "/etc/group" });
  return { world, ctx, backend };
}

/** Commands that change something (reads are free to repeat). */
const effects = (w: FakeWorld): string[] =>
  w.runner.lines().filter((l) => !/^(wg show|systemctl is-active|wg --version)/.test(l));

function assertNoSecretLeaks(w: FakeWorld, logs: unknown): void {
  for (const s of SECRETS) {
    for (const c of w.runner.calls) expect(c.args.join(" "), `argv of ${c.file}`).not.to.contain(s);
    for (const [path, f] of w.fs.files)
      if (path.endsWith(".netdev") || path.endsWith(".network")) expect(f.content, path).not.to.contain(s);
    expect(JSON.stringify(logs)).not.to.contain(s);
  }
}

describe("networkd plugin", () => {
  it("is a BackendPlugin named networkd", () => {
    expect(plugin.name).to.equal("networkd");
    expect(plugin.apiVersion).to.equal(1);
  });

  it("probe: usable only while systemd-networkd is active", async () => {
    const { world, backend } = setup();
    expect(await backend.probe()).to.deep.equal({ usable: true, detail: "systemd-networkd is active" });
    world.networkdActive = false;
    expect((await backend.probe()).usable).to.equal(false);
    expect(effects(world)).to.deep.equal([]);
  });

  it("probe: not usable while NetworkManager runs too, so auto leaves the host to it", async () => {
    const { world, backend } = setup();
    world.networkManagerActive = true;
    const probe = await backend.probe();
    expect(probe.usable).to.equal(false);
    expect(probe.detail).to.match(/NetworkManager is active/);
    world.networkManagerActive = false;
    expect((await backend.probe()).usable).to.equal(true);
    expect(effects(world)).to.deep.equal([]);
  });

  it("first apply writes files and reloads; networkd creates the device from them", async () => {
    const { world, backend, ctx } = setup();
    const r = await backend.apply(mesh([alice, hub]));
    expect(effects(world)).to.deep.equal(["networkctl reload"]);
    expect(r.changes).to.include("interface scope0 handed to systemd-networkd (networkctl reload)");
    const dev = world.devices.get("scope0")!;
    expect([...dev.peers.keys()].sort()).to.deep.equal([alice.publicKey, hub.publicKey].sort());
    expect(dev.peers.get(ALICE)!.psk).to.equal(alice.presharedKey);
    for (const [path, f] of world.fs.files) {
      if (!path.startsWith(`${DIR}/`)) continue;
      expect({ path, uid: f.uid, gid: f.gid, mode: f.mode }).to.deep.equal({
        path,
        uid: 0,
        gid: 998,
        mode: 0o640,
      });
    }
    expect([...world.fs.files.keys()].filter((p) => p.startsWith(DIR)).length).to.equal(5); // netdev, network, key, 2 psk
    assertNoSecretLeaks(world, ctx.lines);
  });

  it("identical re-apply changes nothing: no write, no wg set, no reload", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice, hub]));
    world.runner.clear();
    world.fs.ops.length = 0;
    // Same state, peers and allowed IPs in another order.
    const r = await backend.apply(mesh([{ ...hub, allowedIps: ["fd8a::/64", "10.88.0.0/16"] }, alice]));
    expect(r.changes).to.deep.equal([]);
    expect(effects(world)).to.deep.equal([]);
    expect(world.fs.ops).to.deep.equal([]);
  });

  it("a peer added goes live through wg set and the files, with no reload", async () => {
    const { world, backend, ctx } = setup();
    await backend.apply(mesh([alice, hub]));
    const before = world.devices.get("scope0")!.peers.get(ALICE)!.generation;
    world.runner.clear();
    const r = await backend.apply(mesh([alice, hub, bob]));
    expect(effects(world)).to.deep.equal([`wg set scope0 peer ${BOB} allowed-ips 10.88.0.9/32`]);
    expect(r.changes.some((c) => c.startsWith("peer ") && c.includes("added"))).to.equal(true);
    expect(r.changes).to.include("file 50-scope-corp.netdev written");
    expect(world.fs.files.get(NETDEV)!.content).to.contain(`PublicKey=${BOB}`);
    // Existing sessions untouched.
    expect(world.devices.get("scope0")!.peers.get(ALICE)!.generation).to.equal(before);
    assertNoSecretLeaks(world, ctx.lines);
  });

  it("a peer without a desired endpoint keeps the one in use in the files, so a reboot restores it", async () => {
    const { world, backend } = setup();
    const noOpinion = { ...alice, endpoint: undefined };
    await backend.apply(mesh([alice]));
    // The engine names an endpoint only when it changes one; the files keep the last.
    await backend.apply(mesh([noOpinion]));
    expect(world.fs.files.get(NETDEV)!.content).to.contain("Endpoint=203.0.113.7:51820");
    // The peer roams: WireGuard's endpoint is left alone live and written to the files.
    world.devices.get("scope0")!.peers.get(ALICE)!.endpoint = "198.51.100.3:40000";
    world.runner.clear();
    const r = await backend.apply(mesh([noOpinion, hub]));
    expect(effects(world).filter((l) => l.includes(ALICE))).to.deep.equal([]);
    expect(r.changes).to.include("file 50-scope-corp.netdev written");
    expect(world.fs.files.get(NETDEV)!.content).to.contain("Endpoint=198.51.100.3:40000");
    // Interface gone (a reboot, a hand delete): the files alone bring the peer back with it.
    world.devices.clear();
    await backend.apply(mesh([noOpinion, hub]));
    expect(world.devices.get("scope0")!.peers.get(ALICE)!.endpoint).to.equal("198.51.100.3:40000");
    expect(world.devices.get("scope0")!.peers.get(HUB)!.endpoint).to.equal(hub.endpoint);
  });

  it("a desired endpoint wins over the one in use and the one on file", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice]));
    world.runner.clear();
    await backend.apply(mesh([{ ...alice, endpoint: "192.0.2.1:51821" }]));
    expect(effects(world)).to.deep.equal([`wg set scope0 peer ${ALICE} endpoint 192.0.2.1:51821`]);
    expect(world.fs.files.get(NETDEV)!.content).to.contain("Endpoint=192.0.2.1:51821");
    expect(world.fs.files.get(NETDEV)!.content).not.to.contain("203.0.113.7");
  });

  it("a PSK rotation goes by stdin and rewrites only the PSK file", async () => {
    const { world, backend, ctx } = setup();
    await backend.apply(mesh([alice, hub]));
    world.runner.clear();
    const r = await backend.apply(mesh([{ ...alice, presharedKey: PSK_ALICE_NEXT }, hub]));
    expect(effects(world)).to.deep.equal([`wg set scope0 peer ${ALICE} preshared-key /dev/stdin`]);
    expect(world.runner.calls.find((c) => c.args[0] === "set")!.stdin).to.equal(PSK_ALICE_NEXT);
    expect(r.changes.filter((c) => c.startsWith("file "))).to.have.length(1);
    expect(world.devices.get("scope0")!.peers.get(ALICE)!.psk).to.equal(PSK_ALICE_NEXT);
    assertNoSecretLeaks(world, ctx.lines);
  });

  it("a peer removed goes through wg set … remove, its PSK file is deleted, no reload", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice, hub]));
    world.runner.clear();
    const r = await backend.apply(mesh([hub]));
    expect(effects(world)).to.deep.equal([`wg set scope0 peer ${ALICE} remove`]);
    expect(r.changes.filter((c) => c.endsWith(".psk removed"))).to.have.length(1);
    expect(world.fs.files.get(NETDEV)!.content).not.to.contain(ALICE);
  });

  it("a device-level change (listen port) is set live and reloaded", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice]));
    world.runner.clear();
    await backend.apply(mesh([alice], { listenPort: 51900 }));
    expect(effects(world)).to.deep.equal(["wg set scope0 listen-port 51900", "networkctl reload"]);
    expect(world.devices.get("scope0")!.listenPort).to.equal(51900);
  });

  it("an address change rewrites the .network and reloads", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice]));
    world.runner.clear();
    const r = await backend.apply(mesh([alice], { addresses: ["10.88.0.6/16"] }));
    expect(effects(world)).to.deep.equal(["networkctl reload"]);
    expect(r.changes).to.include("file 50-scope-corp.network written");
  });

  it("re-creates a device deleted behind its back by reloading", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice]));
    world.devices.clear();
    world.runner.clear();
    await backend.apply(mesh([alice]));
    expect(effects(world)).to.deep.equal(["networkctl reload"]);
    expect(world.devices.has("scope0")).to.equal(true);
  });

  it("stats come from wg show dump", async () => {
    const { backend } = setup();
    await backend.apply(mesh([alice, hub]));
    const stats = await backend.stats();
    expect(stats.map((s) => s.publicKey).sort()).to.deep.equal([ALICE, hub.publicKey].sort());
    expect(stats.find((s) => s.publicKey === ALICE)!.endpoint).to.equal("203.0.113.7:51820");
  });

  it("after a daemon restart, stats and close find the interface from the .netdev on disk", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice]));
    const again = createNetworkdBackend(context(), {
      fs: world.fs,
      runner: world.runner,
      groupFile: "/etc/group",
    });
    expect((await again.stats()).map((s) => s.publicKey)).to.deep.equal([ALICE]);
  });

  it("triggerHandshake re-creates the peer live with its PSK on stdin, files untouched", async () => {
    const { world, backend, ctx } = setup();
    await backend.apply(mesh([alice]));
    world.runner.clear();
    world.fs.ops.length = 0;
    await backend.triggerHandshake(ALICE);
    // One wg set: no reader sees the peer gone between remove and re-add.
    expect(effects(world)[0]).to.equal(
      `wg set scope0 peer ${ALICE} remove peer ${ALICE} preshared-key /dev/stdin endpoint 203.0.113.7:51820 persistent-keepalive 25 allowed-ips 10.88.0.7/32`,
    );
    expect(world.devices.get("scope0")!.peers.get(ALICE)!.psk).to.equal(alice.presharedKey);
    expect(world.fs.ops).to.deep.equal([]);
    assertNoSecretLeaks(world, ctx.lines);
  });

  it("close() leaves files and interface in place", async () => {
    const { world, backend } = setup();
    await backend.apply(mesh([alice]));
    world.runner.clear();
    await backend.close();
    expect(effects(world)).to.deep.equal([]);
    expect(world.devices.has("scope0")).to.equal(true);
    expect(world.fs.files.has(NETDEV)).to.equal(true);
  });

  it("close({remove:true}) deletes its files, the link, then reloads; other files stay", async () => {
    const { world, backend } = setup();
    const other = "[NetDev]\nName=scope1\nKind=wireguard\n";
    world.fs.files.set(`${DIR}/50-scope-corp-eu.netdev`, { content: other, uid: 0, gid: 0, mode: 0o644 });
    world.fs.files.set(`${DIR}/10-eth0.network`, {
      content: "[Match]\nName=eth0\n",
      uid: 0,
      gid: 0,
      mode: 0o644,
    });
    await backend.apply(mesh([alice, hub]));
    world.runner.clear();
    await backend.close({ remove: true });
    expect(effects(world)).to.deep.equal(["networkctl delete scope0", "networkctl reload"]);
    expect([...world.fs.files.keys()].filter((p) => p.startsWith(DIR)).sort()).to.deep.equal([
      `${DIR}/10-eth0.network`,
      `${DIR}/50-scope-corp-eu.netdev`,
    ]);
    expect(world.devices.has("scope0")).to.equal(false);
  });

  it("refuses bad input before any effect", async () => {
    const { world, backend } = setup();
    const bad = mesh([{ ...alice, allowedIps: ["10.88.0.7/33"] }]);
    let err: Error | undefined;
    await backend.apply(bad).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/10\.88\.0\.7\/33/);
    expect(effects(world)).to.deep.equal([]);
    expect(world.fs.ops).to.deep.equal([]);
  });

  it("falls back to root:root and says so when the systemd-network group is missing", async () => {
    const { world, backend, ctx } = setup();
    world.fs.files.set("/etc/group", { content: "root:x:0:\n", uid: 0, gid: 0, mode: 0o644 });
    await backend.apply(mesh([]));
    expect(world.fs.files.get(NETDEV)!.gid).to.equal(0);
    expect(ctx.lines.some((l) => l.level === "warn" && l.msg.includes("systemd-network"))).to.equal(true);
  });

  it("rejects a bad network name and bad options", () => {
    expect(() => createNetworkdBackend({ ...context(), network: "../x" })).to.throw(/network name/);
    expect(() => createNetworkdBackend(context({ "firewall-mark": "-1" }))).to.throw(/firewall-mark/);
  });
});
