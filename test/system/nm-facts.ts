// Runs inside a VM with NetworkManager (test/system/cases/nm-pair.ts), as
// `node /project/dist/test/system/nm-facts.js`: the networkmanager plugin
// driven directly with desired states that carry PSKs (the engine has none
// yet), on a profile of its own ("Scope facts", interface scope9), and the
// NetworkManager facts the plugin is built on (docs/dbus.md, "Verified in
// the VM"). Prints "ok: ..." for what must hold and "fact ...: ..." for
// what NM did; exits non-zero on the first broken expectation.
import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Variant } from "dbus-next";
import type { DesiredPeer, DesiredState } from "../../src/core/backend.js";
import { systemBusFactory } from "../../dbus/bus.js";
import { NmClient } from "../../dbus/client.js";
import { NmConnection } from "../../dbus/connection.js";
import { NmDevice } from "../../dbus/device.js";
import { NmManager } from "../../dbus/manager.js";
import { ADD2_BLOCK_AUTOCONNECT, ADD2_TO_DISK, NmSettings } from "../../dbus/settings.js";
import { decodeProfile, encodeProfile } from "../../dbus/wireguard-settings.js";
import { createNetworkManagerBackend } from "../../plugins/networkmanager/index.js";
import { wgKeyPair } from "./case.js";

const IFACE = "scope9";
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const psk = (): string => randomBytes(32).toString("base64");
const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: "utf8" });

function expect(ok: boolean, what: string): void {
  if (!ok) throw new Error(`FAIL: ${what}`);
  console.log(`ok: ${what}`);
}

/** Public key → PSK on the kernel device ("(none)" for a peer without one). */
function livePsks(): Map<string, string> {
  const out = sh("wg", ["show", IFACE, "preshared-keys"]).trim();
  return new Map(out ? out.split("\n").map((l) => l.split("\t") as [string, string]) : []);
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  for (const end = Date.now() + ms; !(await cond()); await sleep(250))
    if (Date.now() > end) throw new Error(`FAIL: timed out waiting for ${what}`);
}

const linkExists = (): boolean => {
  try {
    sh("ip", ["link", "show", IFACE]);
    return true;
  } catch {
    return false;
  }
};

/** Does every wanted peer carry its PSK, live and in the stored profile (GetSecrets)? */
async function pskState(nm: NmClient, path: string, want: DesiredPeer[]): Promise<string> {
  const conn = new NmConnection(nm, path, "Scope facts");
  const stored = decodeProfile(await conn.getSettings(), await conn.getSecrets("wireguard"));
  const live = livePsks();
  const n = want.length;
  const liveOk = want.filter((p) => live.get(p.publicKey) === p.presharedKey).length;
  const storedOk = want.filter(
    (p) => stored?.peers.find((s) => s.publicKey === p.publicKey)?.presharedKey === p.presharedKey,
  ).length;
  const extra = [...live.keys()].filter((k) => !want.some((p) => p.publicKey === k)).length;
  return `live ${liveOk}/${n}, stored ${storedOk}/${n}, extra live peers ${extra}`;
}

const allThere = (n: number) => `live ${n}/${n}, stored ${n}/${n}, extra live peers 0`;

async function main(): Promise<void> {
  const nm = new NmClient(systemBusFactory);
  const settings = new NmSettings(nm);
  const manager = new NmManager(nm);
  const backend = createNetworkManagerBackend({
    network: "facts",
    stateDir: "/tmp/nm-facts",
    logger: quiet,
    options: {},
  });
  const peer = (i: number, key = psk()): DesiredPeer => ({
    publicKey: wgKeyPair().publicKey,
    endpoint: `192.0.2.${i}:51820`,
    allowedIps: [`10.66.0.${10 + i}/32`],
    persistentKeepalive: 0,
    presharedKey: key,
  });
  const iface = {
    name: IFACE,
    privateKey: wgKeyPair().privateKey,
    listenPort: 51999,
    addresses: ["10.66.0.1/24"],
  };
  const state = (peers: DesiredPeer[], addresses = iface.addresses): DesiredState => ({
    iface: { ...iface, addresses },
    peers,
  });
  const [p1, p2, p3] = [peer(1), peer(2), peer(3)] as [DesiredPeer, DesiredPeer, DesiredPeer];

  // Fact 0: a PSK sent without preshared-key-flags = 0 is dropped on AddConnection.
  {
    const uuid = randomUUID();
    const d = encodeProfile({
      id: "Scope flags",
      uuid,
      interfaceName: "scope8",
      autoconnect: false,
      privateKey: iface.privateKey,
      listenPort: 51998,
      peerRoutes: false,
      addresses: ["10.67.0.1/24"],
      peers: [
        {
          publicKey: p1.publicKey,
          allowedIps: ["10.67.0.2/32"],
          persistentKeepalive: 0,
          presharedKey: p1.presharedKey!,
        },
      ],
    });
    const wg = d.wireguard!;
    const peers = (wg.peers!.value as Record<string, Variant>[]).map((x) => {
      const { "preshared-key-flags": _drop, ...rest } = x;
      return rest;
    });
    wg.peers = new Variant("aa{sv}", peers);
    const path = await settings.addConnection(d, ADD2_TO_DISK | ADD2_BLOCK_AUTOCONNECT, "Scope flags");
    const conn = new NmConnection(nm, path, "Scope flags");
    const kept = decodeProfile(await conn.getSettings(), await conn.getSecrets("wireguard"))?.peers[0]
      ?.presharedKey;
    console.log(
      `fact 0: a PSK added without preshared-key-flags is ${kept === p1.presharedKey ? "kept" : "dropped"}`,
    );
    await conn.delete();
  }

  // Create with two PSK peers; the plugin activates the profile.
  await backend.apply(state([p1, p2]));
  await until(`${IFACE} to appear`, linkExists);
  await until("the PSKs on the device", () => livePsks().size === 2);
  // The plugin remembers its profile's uuid in its state directory (store.ts).
  const path = await settings.connectionByUuid(
    readFileSync("/tmp/nm-facts/networkmanager-profile", "utf8").trim(),
  );
  if (!path) throw new Error("FAIL: the plugin's profile is not listed");
  expect((await pskState(nm, path, [p1, p2])) === allThere(2), `create: PSKs ${allThere(2)}`);

  // A peer added and one removed, then one PSK changed: live through wg(8), stored through Update2.
  await backend.apply(state([p2, p3]));
  expect((await pskState(nm, path, [p2, p3])) === allThere(2), `peer add/remove: PSKs ${allThere(2)}`);
  const p2b = { ...p2, presharedKey: psk() };
  await backend.apply(state([p2b, p3]));
  expect((await pskState(nm, path, [p2b, p3])) === allThere(2), `PSK change: PSKs ${allThere(2)}`);

  // Fact 1: NM does not re-sync the kernel device after a wg(8) change.
  // P2 is in NM's applied connection since the activation (P3 came later, through wg(8)).
  sh("wg", ["set", IFACE, "peer", p2.publicKey, "remove"]);
  await sleep(3_000);
  const device = await manager.deviceByIpIface(IFACE);
  if (!device) throw new Error(`FAIL: NM has no device ${IFACE}`);
  const applied = decodeProfile((await new NmDevice(nm, device).getAppliedConnection()).settings);
  console.log(
    `fact 1: 3 s after 'wg set ${IFACE} peer P2 remove', P2 is ${livePsks().has(p2.publicKey) ? "back" : "still gone"} ` +
      `on the device, ${applied?.peers.some((x) => x.publicKey === p2.publicKey) ? "still in" : "gone from"} NM's applied connection; ` +
      `P3 (added live by wg(8)) is ${applied?.peers.some((x) => x.publicKey === p3.publicKey) ? "in" : "not in"} it`,
  );
  await backend.apply(state([p2b, p3]));
  expect(
    (await pskState(nm, path, [p2b, p3])) === allThere(2),
    `the plugin puts the device right again: ${allThere(2)}`,
  );

  // Fact 3: a plain Device.Reapply drops the PSKs on NM 1.52; the plugin's Reapply (addresses) restores them.
  const version = await manager.version();
  await new NmDevice(nm, device).reapply({}, 0n);
  await sleep(2_000);
  const after = [...livePsks().values()].filter((v) => v !== "(none)").length;
  console.log(
    `fact 3: NetworkManager ${version}: after a plain Device.Reapply the device has ${after}/2 PSKs`,
  );
  await backend.apply(state([p2b, p3], ["10.66.0.1/24", "10.66.1.1/24"]));
  expect(
    (await pskState(nm, path, [p2b, p3])) === allThere(2),
    `address change (Update2 + Reapply + wg(8) restore): PSKs ${allThere(2)}`,
  );

  // Fact 2: DeactivateConnection blocks autoconnect (the profile has autoconnect=yes).
  sh("nmcli", ["connection", "down", "Scope facts"]);
  await until(`${IFACE} to go`, () => !linkExists(), 10_000);
  await sleep(5_000);
  console.log(
    `fact 2: 5 s after 'nmcli connection down' (autoconnect=yes) the profile is ${linkExists() ? "up again" : "still down"}`,
  );
  // The plugin's Update2 while off carries block-autoconnect; it must stay down too.
  await backend.apply(state([p3]));
  await sleep(3_000);
  expect(!linkExists(), "an apply while switched off saves the profile and leaves it down");
  // Without block-autoconnect (nmcli modify): does NM bring it back by itself?
  sh("nmcli", ["connection", "modify", "Scope facts", "connection.autoconnect-priority", "1"]);
  await sleep(5_000);
  console.log(
    `fact 2b: 5 s after an Update2 without block-autoconnect the profile is ${linkExists() ? "up again" : "still down"}`,
  );

  await backend.close({ remove: true });
  nm.close();
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.message);
    process.exit(1);
  },
);
