import { expect } from "chai";
import { DBusErrorReply } from "../../../dbus/bus.js";
import { plugin } from "../../../plugins/networkmanager/index.js";
import { ScopeError } from "../../../src/core/errors.js";
import { shortKey } from "../../../src/crypto/keys.js";
import {
  ALICE,
  BOB,
  HUB,
  PSK_ALICE,
  PSK_ALICE_NEXT,
  PSK_HUB,
  SECRETS,
  SELF_PRIVATE,
  alice,
  bob,
  hub,
  mesh,
} from "../networkd/fixtures.js";
import { PROFILE, UUID1, settle, setup } from "./setup.js";

const A = shortKey(ALICE);
const B = shortKey(BOB);
const H = shortKey(HUB);

function assertNoSecrets(texts: unknown): void {
  const text = JSON.stringify(texts);
  for (const s of SECRETS) expect(text).not.to.contain(s);
}

describe("networkmanager plugin", () => {
  it("is a BackendPlugin named networkmanager", () => {
    expect(plugin.name).to.equal("networkmanager");
    expect(plugin.apiVersion).to.equal(1);
  });

  it("probe: usable while NetworkManager runs and manages networking; no effects", async () => {
    const { nm, backend } = setup();
    expect(await backend.probe()).to.deep.equal({
      usable: true,
      detail: "NetworkManager 1.52.0 is running and manages networking",
    });
    nm.networkingEnabled = false;
    expect((await backend.probe()).detail).to.match(/networking is disabled/);
    nm.networkingEnabled = true;
    nm.version = "1.14.0";
    expect((await backend.probe()).usable).to.equal(false);
    nm.running = false;
    expect(await backend.probe()).to.deep.equal({
      usable: false,
      detail: "NetworkManager is not on the system bus",
    });
    expect(nm.effects()).to.deep.equal([]);
    await backend.close();
    expect(nm.openConnections()).to.equal(0);
  });

  it("create: one to-disk profile with every peer and PSK, then activated", async () => {
    const { nm, backend, ctx, store } = setup();
    const r = await backend.apply(mesh([alice, hub]));
    expect(r.created).to.equal(true);
    expect(nm.effects()).to.deep.equal([
      `Settings.AddConnection2 "${PROFILE}" to-disk|block-autoconnect`,
      `Manager.ActivateConnection "${PROFILE}"`,
    ]);
    expect(nm.describe(PROFILE)).to.deep.equal([
      `connection: id=${PROFILE} uuid=${UUID1} type=wireguard interface-name=scope0 autoconnect=true`,
      "wireguard: private-key=(secret) private-key-flags=0 listen-port=51820 peer-routes=false",
      `wireguard.peer ${A}: endpoint=203.0.113.7:51820 allowed-ips=10.88.0.7/32 persistent-keepalive=25 preshared-key=(secret) preshared-key-flags=0`,
      `wireguard.peer ${H}: endpoint=[2001:db8::1]:51820 allowed-ips=10.88.0.0/16,fd8a::/64 preshared-key=(secret) preshared-key-flags=0`,
      "ipv4: method=manual address-data=10.88.0.5/16",
      "ipv6: method=manual address-data=fd8a::5/64",
    ]);
    // NM kept the PSKs (preshared-key-flags 0) and put them on the device.
    const dev = nm.wireguard.devices.get("scope0")!;
    expect(dev.privateKey).to.equal(SELF_PRIVATE);
    expect(dev.peers.get(ALICE)!.psk).to.equal(PSK_ALICE);
    expect(dev.peers.get(HUB)!.psk).to.equal(PSK_HUB);
    expect(store.uuid).to.equal(UUID1);
    assertNoSecrets([nm.lines, ctx.lines, r.changes]);
  });

  it("identical re-apply: no Update2, no wg set", async () => {
    const { nm, backend } = setup();
    await backend.apply(mesh([alice, hub]));
    nm.clearLines();
    const r = await backend.apply(mesh([{ ...hub, allowedIps: ["fd8a::/64", "10.88.0.0/16"] }, alice]));
    expect(r.changes).to.deep.equal([]);
    expect(nm.effects()).to.deep.equal([]);
  });

  it("peer add: Update2 without reapply, one wg set for the newcomer; the others keep their sessions", async () => {
    const { nm, backend, ctx } = setup();
    await backend.apply(mesh([alice, hub]));
    const gen = (k: string) => nm.wireguard.devices.get("scope0")!.peers.get(k)!.generation;
    const before = [gen(ALICE), gen(HUB)];
    nm.clearLines();
    const r = await backend.apply(mesh([alice, hub, bob]));
    expect(nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      `wg set scope0 peer ${B} allowed-ips 10.88.0.9/32`,
    ]);
    expect([gen(ALICE), gen(HUB)]).to.deep.equal(before);
    expect(r.changes).to.include(
      `peer ${B} added: endpoint (none), allowed-ips 10.88.0.9/32, keepalive off, preshared-key (none)`,
    );
    expect(nm.describe(PROFILE)).to.include(`wireguard.peer ${B}: allowed-ips=10.88.0.9/32`);
    assertNoSecrets([nm.lines, ctx.lines, r.changes]);
  });

  it("peer remove: Update2 and wg remove of that peer only", async () => {
    const { nm, backend } = setup();
    await backend.apply(mesh([alice, hub, bob]));
    const hubGen = nm.wireguard.devices.get("scope0")!.peers.get(HUB)!.generation;
    nm.clearLines();
    await backend.apply(mesh([hub, bob]));
    expect(nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      `wg set scope0 peer ${A} remove`,
    ]);
    expect(nm.wireguard.devices.get("scope0")!.peers.get(HUB)!.generation).to.equal(hubGen);
    expect(nm.describe(PROFILE).some((l) => l.includes(A))).to.equal(false);
  });

  it("PSK change: stored in the profile with flags 0 and set live by wg on stdin; no Reapply", async () => {
    const { nm, backend, ctx } = setup();
    await backend.apply(mesh([alice, hub]));
    nm.clearLines();
    const r = await backend.apply(mesh([{ ...alice, presharedKey: PSK_ALICE_NEXT }, hub]));
    expect(nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      `wg set scope0 peer ${A} preshared-key /dev/stdin`,
    ]);
    expect(nm.wireguard.devices.get("scope0")!.peers.get(ALICE)!.psk).to.equal(PSK_ALICE_NEXT);
    const stored = nm.profile(PROFILE)!.settings.wireguard!.peers!.value as Record<
      string,
      { value: unknown }
    >[];
    const a = stored.find((p) => p["public-key"]!.value === ALICE)!;
    expect(a["preshared-key"]!.value).to.equal(PSK_ALICE_NEXT);
    expect(r.changes).to.include(`peer ${A} preshared-key (set) => (new)`);
    assertNoSecrets([nm.lines, ctx.lines, r.changes]);
  });

  it("address change: Update2, Reapply, then the PSKs NM 1.52 dropped are restored by wg", async () => {
    const { nm, backend } = setup();
    await backend.apply(mesh([alice, hub]));
    nm.clearLines();
    await backend.apply(mesh([alice, hub], { addresses: ["10.88.0.6/16", "fd8a::5/64"] }));
    expect(nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      "Device.Reapply scope0 version=0",
      `wg set scope0 peer ${A} preshared-key /dev/stdin`,
      `wg set scope0 peer ${H} preshared-key /dev/stdin`,
    ]);
    const dev = nm.wireguard.devices.get("scope0")!;
    expect(dev.peers.get(ALICE)!.psk).to.equal(PSK_ALICE);
    expect(dev.peers.get(HUB)!.psk).to.equal(PSK_HUB);
  });

  it("pause/resume: the user switches the profile off and on; apply meanwhile only saves, never activates", async () => {
    const { nm, backend, ctx } = setup();
    await backend.apply(mesh([alice, hub]));
    const seen: boolean[] = [];
    backend.onActiveChange((a) => seen.push(a));
    await settle();
    expect(seen).to.deep.equal([true]);

    nm.clearLines();
    nm.userDeactivate(PROFILE);
    await settle();
    expect(seen).to.deep.equal([true, false]);
    expect(nm.wireguard.devices.has("scope0")).to.equal(false);

    const r = await backend.apply(mesh([alice, hub, bob]));
    await settle();
    expect(nm.effects()).to.deep.equal([
      `# user: nmcli connection down "${PROFILE}"`,
      `Connection.Update2 "${PROFILE}" to-disk|block-autoconnect|no-reapply`,
    ]);
    expect(nm.activeOf(PROFILE)).to.equal(undefined);
    expect(r.changes.at(-1)).to.match(/switched off outside Scope and stays off/);
    expect(seen).to.deep.equal([true, false]);

    nm.userActivate(PROFILE);
    await settle();
    expect(seen).to.deep.equal([true, false, true]);
    // NM brought it up from the saved profile: bob is there, nothing left to do.
    expect([...nm.wireguard.devices.get("scope0")!.peers.keys()]).to.include(BOB);
    nm.clearLines();
    expect((await backend.apply(mesh([alice, hub, bob]))).changes).to.deep.equal([]);
    expect(nm.effects()).to.deep.equal([]);
    expect(ctx.lines.map((l) => l.msg)).to.include(`networkmanager: profile "${PROFILE}" is switched off`);
  });

  it("a profile that is off at start is reported off and stays off", async () => {
    const { nm, backend } = setup();
    await backend.apply(mesh([alice]));
    nm.userDeactivate(PROFILE);
    await backend.close();

    const second = setup({}, UUID1);
    // the same NM: move the profile over
    second.nm.profiles.push(...nm.profiles);
    const seen: boolean[] = [];
    second.backend.onActiveChange((a) => seen.push(a));
    await settle();
    expect(seen).to.deep.equal([false]);
    await second.backend.apply(mesh([alice, bob]));
    expect(second.nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|block-autoconnect|no-reapply`,
    ]);
  });

  it("deleted by hand: a warning, then every apply says so; recreated only after allowRecreate()", async () => {
    const { nm, backend, ctx } = setup();
    await backend.apply(mesh([alice, hub]));
    const seen: boolean[] = [];
    backend.onActiveChange((a) => seen.push(a));
    await settle();
    nm.userDelete(PROFILE);
    await settle();
    expect(seen).to.deep.equal([true, false]);
    expect(ctx.lines.filter((l) => l.level === "warn").map((l) => l.msg)).to.deep.equal([
      `networkmanager: profile "${PROFILE}" was deleted outside Scope (NetworkManager reported ConnectionRemoved); it is recreated only on request`,
    ]);
    nm.clearLines();
    const err = await backend.apply(mesh([alice, hub])).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ScopeError);
    expect((err as ScopeError).code).to.equal("not_found");
    expect((err as ScopeError).message).to.match(
      /was deleted outside Scope .*does not recreate it by itself/,
    );
    expect(nm.effects()).to.deep.equal([]);

    await backend.allowRecreate();
    const r = await backend.apply(mesh([alice, hub]));
    expect(r.created).to.equal(true);
    expect(nm.effects()).to.deep.equal([
      `Settings.AddConnection2 "${PROFILE}" to-disk|block-autoconnect`,
      `Manager.ActivateConnection "${PROFILE}"`,
    ]);
  });

  it("a first activation NM refused is retried by the next apply (it was not the user's switch)", async () => {
    const { nm, backend } = setup();
    const handle = nm.handle.bind(nm);
    let refuse = true;
    nm.handle = (c) => {
      if (c.member === "ActivateConnection" && refuse) {
        refuse = false;
        throw new DBusErrorReply("org.freedesktop.NetworkManager.Failed", "activation refused");
      }
      return handle(c);
    };
    const err = (await backend.apply(mesh([alice])).catch((e: unknown) => e)) as ScopeError;
    expect(err.message).to.match(
      /failed after 1 change\(s\): ActivateConnection of "Scope corp": .*activation refused/,
    );
    nm.clearLines();
    await backend.apply(mesh([alice]));
    expect(nm.effects()).to.deep.equal([`Manager.ActivateConnection "${PROFILE}"`]);
    expect(nm.activeOf(PROFILE)).not.to.equal(undefined);
  });

  it("deleted while the daemon was down: the remembered uuid is gone, so apply refuses to recreate", async () => {
    const { nm, backend } = setup({}, UUID1);
    const err = await backend.apply(mesh([alice])).catch((e: unknown) => e);
    expect((err as ScopeError).code).to.equal("not_found");
    expect(nm.effects()).to.deep.equal([]);
  });

  it("NetworkManager restart: paths change, the plugin finds its profile again and carries on", async () => {
    const { nm, backend } = setup();
    await backend.apply(mesh([alice, hub]));
    const seen: boolean[] = [];
    backend.onActiveChange((a) => seen.push(a));
    await settle();
    const oldPath = nm.profile(PROFILE)!.path;
    nm.clearLines();
    nm.restart();
    await settle();
    expect(nm.profile(PROFILE)!.path).not.to.equal(oldPath);
    expect(nm.lines).to.include(`Settings.GetConnectionByUuid ${UUID1}`);
    nm.clearLines();
    await backend.apply(mesh([alice, hub, bob]));
    expect(nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      `wg set scope0 peer ${B} allowed-ips 10.88.0.9/32`,
    ]);
    nm.userDeactivate(PROFILE);
    await settle();
    expect(seen).to.deep.equal([true, false]);
  });

  it("a restarted NM that has not loaded the profile yet is not taken for a deletion", async () => {
    const { nm, backend, ctx } = setup();
    await backend.apply(mesh([alice]));
    backend.onActiveChange(() => undefined);
    await settle();
    const saved = nm.profiles.splice(0);
    nm.restart();
    await settle();
    nm.profiles.push(...saved);
    expect(ctx.lines.filter((l) => l.level === "warn").map((l) => l.msg)).to.deep.equal([
      "networkmanager: NetworkManager left the bus; waiting for it to come back",
    ]);
    nm.clearLines();
    await backend.apply(mesh([alice, bob]));
    expect(nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      `wg set scope0 peer ${B} allowed-ips 10.88.0.9/32`,
    ]);
  });

  it("bus restart: the client reconnects on its clock, re-adds its matches and the plugin carries on", async () => {
    const { nm, backend, clock } = setup();
    await backend.apply(mesh([alice, hub]));
    const seen: boolean[] = [];
    backend.onActiveChange((a) => seen.push(a));
    await settle();
    nm.busRestart();
    expect(nm.openConnections()).to.equal(0);
    clock.advance(100);
    await settle();
    expect(nm.openConnections()).to.equal(1);
    nm.userDeactivate(PROFILE);
    await settle();
    expect(seen).to.deep.equal([true, false]);
    nm.userActivate(PROFILE);
    await settle();
    nm.clearLines();
    await backend.apply(mesh([alice, hub, bob]));
    expect(nm.effects()).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      `wg set scope0 peer ${B} allowed-ips 10.88.0.9/32`,
    ]);
    await backend.close();
    expect(clock.pending()).to.equal(0);
  });

  it("NetworkManager before 1.20: AddConnection2 is unknown, AddConnection is used", async () => {
    const { nm, backend } = setup();
    nm.hasAddConnection2 = false;
    await backend.apply(mesh([alice]));
    expect(nm.lines.filter((l) => /AddConnection|UnknownMethod|Activate/.test(l))).to.deep.equal([
      `  -> org.freedesktop.DBus.Error.UnknownMethod: no method org.freedesktop.NetworkManager.Settings.AddConnection2`,
      `Settings.AddConnection "${PROFILE}"`,
      `Manager.ActivateConnection "${PROFILE}"`,
    ]);
    expect(nm.wireguard.devices.get("scope0")!.peers.get(ALICE)!.psk).to.equal(PSK_ALICE);
  });

  it("NetworkManager before 1.20: Update2 without NO_REAPPLY after NM refused the flag, once", async () => {
    const { nm, backend } = setup();
    nm.hasNoReapply = false;
    await backend.apply(mesh([alice]));
    nm.clearLines();
    await backend.apply(mesh([alice, hub]));
    await backend.apply(mesh([alice, hub, bob]));
    expect(nm.lines.filter((l) => /Update2|InvalidArguments/.test(l))).to.deep.equal([
      `Connection.Update2 "${PROFILE}" to-disk|no-reapply`,
      "  -> org.freedesktop.NetworkManager.Settings.InvalidArguments: unknown flags 0x41",
      `Connection.Update2 "${PROFILE}" to-disk`,
      `Connection.Update2 "${PROFILE}" to-disk`,
    ]);
    expect(nm.wireguard.devices.get("scope0")!.peers.has(BOB)).to.equal(true);
  });

  it("stats and triggerHandshake work on the kernel device through wg", async () => {
    const { nm, backend } = setup();
    expect(await backend.stats()).to.deep.equal([]);
    await backend.apply(mesh([alice]));
    const peer = nm.wireguard.devices.get("scope0")!.peers.get(ALICE)!;
    peer.rx = 10;
    peer.tx = 20;
    peer.handshakeSec = 1_700_000_000;
    expect(await backend.stats()).to.deep.equal([
      {
        publicKey: ALICE,
        endpoint: "203.0.113.7:51820",
        lastHandshakeMs: 1_700_000_000_000,
        rxBytes: 10,
        txBytes: 20,
      },
    ]);
    nm.clearLines();
    await backend.triggerHandshake(ALICE);
    // One wg set: no reader sees the peer gone between remove and re-add.
    expect(nm.effects()[0]).to.equal(
      `wg set scope0 peer ${A} remove peer ${A} preshared-key /dev/stdin endpoint 203.0.113.7:51820 persistent-keepalive 25 allowed-ips 10.88.0.7/32`,
    );
    expect(nm.wireguard.devices.get("scope0")!.peers.get(ALICE)!.psk).to.equal(PSK_ALICE);
    assertNoSecrets(nm.lines);
  });

  it("close() leaves the profile up and closes the bus; close({remove}) deletes the profile", async () => {
    const first = setup();
    await first.backend.apply(mesh([alice]));
    await first.backend.close();
    expect(first.nm.openConnections()).to.equal(0);
    expect(first.nm.activeOf(PROFILE)).not.to.equal(undefined);

    const { nm, backend, store, ctx } = setup();
    await backend.apply(mesh([alice]));
    nm.clearLines();
    await backend.close({ remove: true });
    expect(nm.effects()).to.deep.equal([`Connection.Delete "${PROFILE}"`]);
    expect(nm.profile(PROFILE)).to.equal(undefined);
    expect(nm.wireguard.devices.has("scope0")).to.equal(false);
    expect(store.uuid).to.equal(undefined);
    expect(ctx.lines.filter((l) => l.level === "warn")).to.deep.equal([]);
  });

  it("an NM error keeps its D-Bus name and code, and carries no secret", async () => {
    const { nm, backend } = setup();
    await backend.apply(mesh([alice]));
    // NM refuses the next Update2, echoing a secret as some NM errors echo values.
    const handle = nm.handle.bind(nm);
    nm.handle = (c) => {
      if (c.member === "Update2") {
        throw new DBusErrorReply(
          "org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty",
          `wireguard.peers[0]: invalid key ${PSK_ALICE_NEXT}`,
        );
      }
      return handle(c);
    };
    const err = (await backend
      .apply(mesh([{ ...alice, presharedKey: PSK_ALICE_NEXT }]))
      .catch((e: unknown) => e)) as ScopeError;
    expect(err.code).to.equal("config");
    expect(err.message).to.contain("org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty");
    expect(err.message).not.to.contain(PSK_ALICE_NEXT);
  });
});
