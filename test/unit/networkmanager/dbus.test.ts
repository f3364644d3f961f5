import { expect } from "chai";
import { EventEmitter } from "node:events";
import { DBusError, Message, MessageType, Variant } from "dbus-next";
import { DBusErrorReply, DBusNextConnection, matchRule, type Signal } from "../../../dbus/bus.js";
import { NmClient, NM_NAME, NM_PATH } from "../../../dbus/client.js";
import { NmConnection, UPDATE2_NO_REAPPLY, UPDATE2_TO_DISK } from "../../../dbus/connection.js";
import { NmDevice } from "../../../dbus/device.js";
import { NmError, codeOfDBusError } from "../../../dbus/errors.js";
import { FakeNetworkManager, checkSettings } from "../../../dbus/fake-nm.js";
import { NmManager } from "../../../dbus/manager.js";
import { ADD2_TO_DISK, NmSettings } from "../../../dbus/settings.js";
import { decodeProfile, encodeProfile, type WireGuardProfile } from "../../../dbus/wireguard-settings.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { ALICE, HUB, PSK_ALICE, SELF_PRIVATE } from "../networkd/fixtures.js";

const profile: WireGuardProfile = {
  id: "Scope corp",
  uuid: "5c09e0c4-0000-4000-8000-000000000001",
  interfaceName: "scope0",
  autoconnect: true,
  privateKey: SELF_PRIVATE,
  listenPort: 51820,
  fwmark: 51820,
  peerRoutes: false,
  addresses: ["10.88.0.5/16", "fd8a::5/64"],
  peers: [
    {
      publicKey: ALICE,
      endpoint: "203.0.113.7:51820",
      allowedIps: ["10.88.0.7/32"],
      persistentKeepalive: 25,
      presharedKey: PSK_ALICE,
    },
    { publicKey: HUB, allowedIps: ["10.88.0.0/16"], persistentKeepalive: 0 },
  ],
};

const sigs = (d: Record<string, Variant>) =>
  Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.signature]));

describe("dbus: wireguard settings codec", () => {
  it("gives every key NM's type: peers aa{sv}, allowed-ips as, keepalive u, addresses aa{sv}", () => {
    const d = encodeProfile(profile);
    checkSettings(d);
    expect(sigs(d.wireguard!)).to.deep.equal({
      "private-key": "s",
      "private-key-flags": "u",
      "listen-port": "u",
      fwmark: "u",
      "peer-routes": "b",
      peers: "aa{sv}",
    });
    const [a, h] = d.wireguard!.peers!.value as Record<string, Variant>[];
    expect(sigs(a!)).to.deep.equal({
      "public-key": "s",
      endpoint: "s",
      "allowed-ips": "as",
      "persistent-keepalive": "u",
      "preshared-key": "s",
      "preshared-key-flags": "u",
    });
    // With a PSK the flags are 0 (NM keeps it); without, no flags at all (NM's default
    // NOT_REQUIRED: flags 0 with no key would make NM ask an agent for one).
    expect(a!["preshared-key-flags"]!.value).to.equal(0);
    expect(Object.keys(h!)).to.deep.equal(["public-key", "allowed-ips"]);
    expect(d.ipv4!["address-data"]!.value).to.deep.equal([
      { address: new Variant("s", "10.88.0.5"), prefix: new Variant("u", 16) },
    ]);
  });

  it("an IPv4-only mesh gets ipv6.method ignore (WireGuard allows ignore/manual/link-local/disabled)", () => {
    const d = encodeProfile({ ...profile, addresses: ["10.88.0.5/16"] });
    expect(d.ipv6).to.deep.equal({ method: new Variant("s", "ignore") });
  });

  it("decodes GetSettings + GetSecrets back to the same profile", async () => {
    const nm = new FakeNetworkManager();
    const client = new NmClient(nm.factory);
    const path = await new NmSettings(client).addConnection(encodeProfile(profile), ADD2_TO_DISK | 0x20, "p");
    const conn = new NmConnection(client, path, "p");
    const settings = await conn.getSettings();
    expect(decodeProfile(settings)!.privateKey).to.equal(undefined); // GetSettings never has secrets
    expect(decodeProfile(settings, await conn.getSecrets("wireguard"))).to.deep.equal(profile);
    client.close();
  });

  it("the fake refuses what NM refuses: a wrong Variant type, an unknown key, a Number for t", async () => {
    const nm = new FakeNetworkManager();
    const client = new NmClient(nm.factory);
    const settings = new NmSettings(client);
    const path = await settings.addConnection(encodeProfile(profile), ADD2_TO_DISK, "p");
    const bad = encodeProfile(profile);
    bad.wireguard!["listen-port"] = new Variant("s", "51820");
    const err = (await new NmConnection(client, path, "p")
      .update2(bad, UPDATE2_TO_DISK | UPDATE2_NO_REAPPLY)
      .catch((e: unknown) => e)) as NmError;
    expect(err).to.be.instanceOf(NmError);
    expect(err.code).to.equal("config");
    expect(err.dbusName).to.equal("org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty");
    expect(err.message).to.contain(
      "wireguard.listen-port: can't set property of type 'u' from value of type 's'",
    );

    const unknown = encodeProfile(profile);
    unknown.wireguard!["preshared-key"] = new Variant("s", "x");
    expect(
      ((await settings.addConnection(unknown, 1, "q").catch((e: unknown) => e)) as Error).message,
    ).to.match(/wireguard.preshared-key: unknown property/);

    const devicePath = (await new NmManager(client).deviceByIpIface("scope0"))!;
    const wrongT = client.call(
      devicePath,
      "org.freedesktop.NetworkManager.Device",
      "Reapply",
      "a{sa{sv}}tu",
      [{}, 0, 0],
      "Reapply",
    );
    expect(((await wrongT.catch((e: unknown) => e)) as Error).message).to.match(/not a BigInt/);
    await new NmDevice(client, devicePath).reapply({}, 0n);
    const applied = await new NmDevice(client, devicePath).getAppliedConnection();
    expect(applied.versionId).to.equal(2n);
    client.close();
  });

  it("the fake models NM's traps the plugin must avoid: PSK without flags 0 dropped, Update2 re-enabling autoconnect", async () => {
    const nm = new FakeNetworkManager();
    const client = new NmClient(nm.factory);
    const noFlags = encodeProfile(profile);
    const peers = noFlags.wireguard!.peers!.value as Record<string, Variant>[];
    delete peers[0]!["preshared-key-flags"];
    const path = await new NmSettings(client).addConnection(noFlags, ADD2_TO_DISK, "p");
    const conn = new NmConnection(client, path, "p");
    expect(
      decodeProfile(await conn.getSettings(), await conn.getSecrets("wireguard"))!.peers[0]!.presharedKey,
    ).to.equal(undefined);
    expect(nm.wireguard.devices.get("scope0")!.peers.get(ALICE)!.psk).to.equal(undefined);

    nm.userDeactivate("Scope corp");
    await conn.update2(encodeProfile(profile), UPDATE2_TO_DISK | UPDATE2_NO_REAPPLY);
    expect(nm.activeOf("Scope corp"), "an Update2 without block-autoconnect brings it back").not.to.equal(
      undefined,
    );
    client.close();
  });

  it("a call with the wrong method signature is InvalidArgs", async () => {
    const nm = new FakeNetworkManager();
    const client = new NmClient(nm.factory);
    const err = (await client
      .call(NM_PATH, "org.freedesktop.NetworkManager", "ActivateConnection", "oo", ["/", "/"], "Activate")
      .catch((e: unknown) => e)) as NmError;
    expect(err.dbusName).to.equal("org.freedesktop.DBus.Error.InvalidArgs");
    expect(err.code).to.equal("config");
    client.close();
  });
});

describe("dbus: errors", () => {
  it("maps NM's D-Bus error names to Scope codes in one table", () => {
    const table: [string, string][] = [
      ["org.freedesktop.NetworkManager.PermissionDenied", "forbidden"],
      ["org.freedesktop.DBus.Error.AccessDenied", "forbidden"],
      ["org.freedesktop.NetworkManager.UnknownConnection", "not_found"],
      ["org.freedesktop.DBus.Error.UnknownObject", "not_found"],
      ["org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty", "config"],
      ["org.freedesktop.NetworkManager.Settings.InvalidConnection", "config"],
      ["org.freedesktop.NetworkManager.Device.VersionIdMismatch", "conflict"],
      ["org.freedesktop.NetworkManager.ConnectionNotActive", "conflict"],
      ["org.freedesktop.DBus.Error.ServiceUnknown", "unavailable"],
      ["org.freedesktop.DBus.Error.NoReply", "unavailable"],
      ["org.freedesktop.NetworkManager.Failed", "backend"],
    ];
    expect(table.map(([n]) => [n, codeOfDBusError(n)])).to.deep.equal(table);
  });

  it("match rules quote their values", () => {
    expect(matchRule({ sender: NM_NAME, interface: "a.b", member: "M", path: "/x", arg0: "it's" })).to.equal(
      `type='signal',sender='${NM_NAME}',interface='a.b',member='M',path='/x',arg0='it'\\''s'`,
    );
  });
});

describe("dbus: client lifecycle", () => {
  it("a watch is in place when watch() resolves: a signal right after is seen", async () => {
    const nm = new FakeNetworkManager();
    const client = new NmClient(nm.factory);
    const seen: string[] = [];
    await new NmSettings(client).onConnectionRemoved((p) => seen.push(p));
    const path = await new NmSettings(client).addConnection(encodeProfile(profile), ADD2_TO_DISK | 0x20, "p");
    nm.userDelete("Scope corp");
    expect(seen).to.deep.equal([path]);
    expect(nm.lines.filter((l) => l.startsWith("DBus.AddMatch"))).to.deep.equal([
      "DBus.AddMatch org.freedesktop.DBus.NameOwnerChanged",
      "DBus.AddMatch org.freedesktop.NetworkManager.Settings.ConnectionRemoved",
    ]);
    client.close();
  });

  it("NetworkManager restart: nm-stopped then nm-started; calls while it is away fail as unavailable", async () => {
    const nm = new FakeNetworkManager();
    const client = new NmClient(nm.factory);
    const events: string[] = [];
    client.onLifecycle((e) => events.push(e));
    expect(await client.nmRunning()).to.equal(true);
    nm.restart();
    expect(events).to.deep.equal(["nm-stopped", "nm-started"]);
    nm.running = false;
    const err = (await new NmManager(client).version().catch((e: unknown) => e)) as NmError;
    expect(err.code).to.equal("unavailable");
    expect(err.dbusName).to.equal("org.freedesktop.DBus.Error.ServiceUnknown");
    client.close();
  });

  it("bus restart: reconnects with back-off on the clock, re-adds watches, then says bus-reconnected", async () => {
    const nm = new FakeNetworkManager();
    const clock = new FakeClock();
    const client = new NmClient(nm.factory, { clock });
    const events: string[] = [];
    client.onLifecycle((e) => events.push(e));
    const removed: string[] = [];
    await new NmSettings(client).onConnectionRemoved((p) => removed.push(p));
    nm.busRestart();
    expect(clock.pending()).to.equal(1);
    clock.advance(100);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(events).to.deep.equal(["bus-reconnected"]);
    const path = await new NmSettings(client).addConnection(encodeProfile(profile), ADD2_TO_DISK | 0x20, "p");
    nm.userDelete("Scope corp");
    expect(removed).to.deep.equal([path]);
    client.close();
    expect(clock.pending()).to.equal(0);
    expect(nm.openConnections()).to.equal(0);
  });
});

/** dbus-next's MessageBus as far as DBusNextConnection uses it. */
class StubBus extends EventEmitter {
  readonly sent: Message[] = [];
  readonly _connection = new EventEmitter();
  disconnected = false;
  reply: (m: Message) => Message | Error = (m) => Message.newMethodReturn(m, "", []);
  async call(m: Message): Promise<Message | null> {
    this.sent.push(m);
    const r = this.reply(m);
    if (r instanceof Error) throw r;
    return r;
  }
  disconnect(): void {
    this.disconnected = true;
  }
}

describe("dbus: DBusNextConnection over dbus-next", () => {
  it("sends explicit signatures, turns DBusError into DBusErrorReply, dispatches matching signals, reports the end", async () => {
    const raw = new StubBus();
    const conn = new DBusNextConnection(raw);
    const got: Signal[] = [];
    await conn.subscribe(
      {
        sender: NM_NAME,
        interface: "org.freedesktop.NetworkManager.Connection.Active",
        member: "StateChanged",
      },
      (s) => got.push(s),
    );
    expect(raw.sent.map((m) => [m.member, m.signature, m.body])).to.deep.equal([
      [
        "AddMatch",
        "s",
        [
          `type='signal',sender='${NM_NAME}',interface='org.freedesktop.NetworkManager.Connection.Active',member='StateChanged'`,
        ],
      ],
    ]);
    raw.emit(
      "message",
      new Message({
        type: MessageType.SIGNAL,
        path: "/a/1",
        interface: "org.freedesktop.NetworkManager.Connection.Active",
        member: "StateChanged",
        signature: "uu",
        body: [4, 2],
      }),
    );
    expect(got).to.deep.equal([
      {
        path: "/a/1",
        interface: "org.freedesktop.NetworkManager.Connection.Active",
        member: "StateChanged",
        body: [4, 2],
      },
    ]);

    raw.reply = () => new DBusError("org.freedesktop.NetworkManager.PermissionDenied", "not allowed");
    const err = await conn
      .call({ destination: NM_NAME, path: NM_PATH, interface: NM_NAME, member: "X", signature: "", body: [] })
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(DBusErrorReply);
    expect((err as DBusErrorReply).errorName).to.equal("org.freedesktop.NetworkManager.PermissionDenied");

    const ended: string[] = [];
    conn.onClose((e) => ended.push(e.message));
    raw._connection.emit("end");
    expect(ended).to.deep.equal(["D-Bus connection ended"]);
    conn.close();
    expect(raw.disconnected).to.equal(false); // already ended; nothing to disconnect twice
  });
});
