/**
 * An in-memory NetworkManager behind the bus seam (bus.ts), for tests
 * without D-Bus or root: stored profiles with their settings, active
 * connections with State and StateChanged, devices with an applied
 * connection, and the kernel WireGuard device they drive (src/wireguard's
 * FakeWireGuard, also reachable through `runner` as wg(8)).
 *
 * Every call is recorded as one readable line in `lines` (tailscale's
 * fakeOS idea), secrets never in them, e.g.
 *   Settings.AddConnection2 "Scope corp" to-disk|block-autoconnect
 *   Manager.ActivateConnection "Scope corp"
 *   wg set scope0 peer AbCd… allowed-ips 10.88.0.9/32
 *
 * What it checks, like NetworkManager would refuse it (nm-wire-checks.ts):
 * - the signature of every call against the method's in-signature, and
 *   `t` arguments must be BigInt;
 * - the body goes through dbus-next's real marshaller and back, so a value
 *   that would not go on the wire fails here too, and NM-side code sees
 *   exactly what a real NM would (Variants, Buffers, BigInts);
 * - each settings key against its NM type (SCHEMA): an unknown key or a
 *   wrong Variant signature is org.freedesktop.NetworkManager.Settings.Connection.InvalidProperty.
 *
 * What it does, as NetworkManager does (DESIGN/issue 12 facts included):
 * - a peer's preshared-key without preshared-key-flags = 0 is dropped on
 *   AddConnection(2)/Update2 (NM's default flags are NOT_REQUIRED);
 * - Update2 replaces every setting; without BLOCK_AUTOCONNECT an inactive
 *   autoconnect profile becomes eligible to autoconnect and comes up
 *   (even one the user switched off), with NO_REAPPLY or without, an
 *   Update2 never touches the live device;
 * - Reapply rebuilds the applied connection and sets every kernel peer
 *   again, and with `reapplyDropsPsks` (NM 1.52) without their PSKs;
 * - activation creates the kernel device from the stored profile;
 *   deactivation and Delete remove it;
 * - restart(): NameOwnerChanged, and every object path changes.
 */
import { Variant } from "dbus-next";
import type { CommandRunner, RunOptions, RunResult } from "../src/exec.js";
import { FakeWireGuard, type FakePeer } from "../src/wireguard/fakes.js";
import { shortKey } from "../src/crypto/keys.js";
import {
  DBUS_NAME,
  DBUS_PATH,
  DBusErrorReply,
  PROPERTIES,
  type BusConnection,
  type BusFactory,
  type DBusCall,
  type Signal,
  type SignalMatch,
} from "./bus.js";
import { NM_NAME, NM_PATH } from "./client.js";
import { ACTIVE_IFACE, ActiveState } from "./active.js";
import { CONNECTION_IFACE, update2FlagNames } from "./connection.js";
import { DEVICE_IFACE } from "./device.js";
import { MANAGER_IFACE } from "./manager.js";
import { SETTINGS_IFACE, SETTINGS_PATH } from "./settings.js";
import type { SettingsDict } from "./wireguard-settings.js";
import {
  ADD2_FLAGS,
  METHODS,
  SECRET_KEYS,
  UPDATE2_FLAGS,
  checkSettings,
  nmErr,
  overTheWire,
  topLevelTypes,
} from "./nm-wire-checks.js";

export { checkSettings } from "./nm-wire-checks.js";

type Dict = Record<string, Variant>;

const val = (v: unknown): unknown => (v instanceof Variant ? v.value : v);
const clone = (d: SettingsDict): SettingsDict => {
  const out: SettingsDict = {};
  for (const [k, s] of Object.entries(d)) out[k] = { ...s };
  return out;
};

export interface FakeProfile {
  path: string;
  /** As NM stores it: secrets included (kept only where their flags say NM keeps them). */
  settings: SettingsDict;
  /** NM blocks autoconnect of a profile the user deactivated, until it is activated again. */
  autoconnectBlocked: boolean;
}

interface FakeActive {
  path: string;
  profile: FakeProfile;
  state: number;
  device: FakeNmDevice;
}

interface FakeNmDevice {
  path: string;
  iface: string;
  applied: SettingsDict;
  versionId: bigint;
}

class FakeBusConnection implements BusConnection {
  readonly subs: { match: SignalMatch; handler: (s: Signal) => void }[] = [];
  private closeListeners: ((e: Error) => void)[] = [];
  open = true;

  constructor(private readonly nm: FakeNetworkManager) {}

  async call(c: DBusCall): Promise<unknown[]> {
    if (!this.open) throw new Error("D-Bus connection is closed");
    return this.nm.handle(c);
  }

  async subscribe(match: SignalMatch, handler: (s: Signal) => void): Promise<() => Promise<void>> {
    await this.call({
      destination: DBUS_NAME,
      path: DBUS_PATH,
      interface: DBUS_NAME,
      member: "AddMatch",
      signature: "s",
      body: [`${match.interface}.${match.member}`],
    });
    const sub = { match, handler };
    this.subs.push(sub);
    return async () => {
      const i = this.subs.indexOf(sub);
      if (i >= 0) this.subs.splice(i, 1);
    };
  }

  onClose(listener: (e: Error) => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    this.open = false;
    this.closeListeners = [];
  }

  /** The bus daemon went away. */
  drop(): void {
    if (!this.open) return;
    this.open = false;
    for (const l of this.closeListeners) l(new Error("D-Bus connection ended"));
    this.closeListeners = [];
  }

  deliver(sender: string, s: Signal): void {
    if (!this.open) return;
    for (const { match, handler } of [...this.subs]) {
      if (match.sender !== sender || match.interface !== s.interface || match.member !== s.member) continue;
      if (match.path !== undefined && match.path !== s.path) continue;
      if (match.arg0 !== undefined && s.body[0] !== match.arg0) continue;
      handler(s);
    }
  }
}

export class FakeNetworkManager {
  /** Every call, one line each, in order; user actions as "# user: …". */
  readonly lines: string[] = [];
  readonly profiles: FakeProfile[] = [];
  readonly actives: FakeActive[] = [];
  running = true;
  version = "1.52.0";
  networkingEnabled = true;
  state = 70;
  /** NM < 1.20: no AddConnection2 (UnknownMethod). */
  hasAddConnection2 = true;
  /** NM < 1.20: Update2 knows no NO_REAPPLY (0x40) and fails on it. */
  hasNoReapply = true;
  /** NM 1.52: Reapply sets the peers without their PSKs. */
  reapplyDropsPsks = true;
  private readonly buses = new Set<FakeBusConnection>();
  private seq = 0;
  private owner = 0;

  constructor(readonly wireguard = new FakeWireGuard()) {}

  /** The BusFactory the client connects with. */
  readonly factory: BusFactory = async () => {
    const bus = new FakeBusConnection(this);
    this.buses.add(bus);
    return bus;
  };

  /** wg(8) on the same kernel devices, recorded in `lines` (args only: keys go on stdin). */
  readonly runner: CommandRunner = {
    run: async (cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
      this.lines.push(
        [cmd, ...args.map((a) => (a.length === 44 && a.endsWith("=") ? shortKey(a) : a))].join(" "),
      );
      if (cmd !== "wg") return { code: 127, stdout: "", stderr: `${cmd}: not found` };
      return this.wireguard.wg([...args], options.stdin);
    },
  };

  /** Lines that change something: D-Bus calls that write, and `wg set`. */
  effects(): string[] {
    return this.lines.filter((l) =>
      /^(Settings\.AddConnection|Connection\.(Update2|Delete)|Manager\.(Activate|Deactivate)|Device\.Reapply|wg set|# user)/.test(
        l,
      ),
    );
  }

  clearLines(): void {
    this.lines.length = 0;
  }

  profile(id: string): FakeProfile | undefined {
    return this.profiles.find((p) => val(p.settings.connection?.id) === id);
  }

  activeOf(id: string): FakeActive | undefined {
    return this.actives.find((a) => val(a.profile.settings.connection?.id) === id);
  }

  /** The stored profile as text, secrets masked: what `nmcli connection show` would tell. */
  describe(id: string): string[] {
    const p = this.profile(id);
    if (!p) return [];
    const show = (k: string, v: unknown): string =>
      SECRET_KEYS.has(k) ? "(secret)" : Array.isArray(v) ? v.join(",") : String(v);
    const out: string[] = [];
    for (const [name, setting] of Object.entries(p.settings)) {
      const flat = Object.entries(setting)
        .filter(([k]) => k !== "peers" && k !== "address-data" && k !== "timestamp")
        .map(([k, v]) => `${k}=${show(k, val(v))}`);
      const addrs = (val(setting["address-data"]) as Dict[] | undefined)?.map(
        (a) => `${val(a.address)}/${val(a.prefix)}`,
      );
      if (addrs) flat.push(`address-data=${addrs.join(",")}`);
      out.push(`${name}: ${flat.join(" ")}`);
      for (const peer of (val(setting.peers) as Dict[] | undefined) ?? []) {
        const fields = Object.entries(peer)
          .filter(([k]) => k !== "public-key")
          .map(([k, v]) => `${k}=${show(k, val(v))}`);
        out.push(`${name}.peer ${shortKey(String(val(peer["public-key"])))}: ${fields.join(" ")}`);
      }
    }
    return out;
  }

  // ---- what a user or the system does -------------------------------------------------

  /** `nmcli connection down ID`. */
  userDeactivate(id: string): void {
    this.lines.push(`# user: nmcli connection down "${id}"`);
    const a = this.activeOf(id);
    if (!a) throw new Error(`fake NM: ${id} is not active`);
    this.deactivate(a);
    a.profile.autoconnectBlocked = true;
  }

  /** `nmcli connection up ID`. */
  userActivate(id: string): void {
    this.lines.push(`# user: nmcli connection up "${id}"`);
    const p = this.profile(id);
    if (!p) throw new Error(`fake NM: no profile ${id}`);
    this.activate(p);
  }

  /** `nmcli connection delete ID`. */
  userDelete(id: string): void {
    this.lines.push(`# user: nmcli connection delete "${id}"`);
    const p = this.profile(id);
    if (!p) throw new Error(`fake NM: no profile ${id}`);
    this.deleteProfile(p);
  }

  /** `systemctl restart NetworkManager`: the name changes owner, every object gets a new path; devices stay up. */
  restart(): void {
    this.lines.push("# system: systemctl restart NetworkManager");
    const old = this.ownerName();
    this.running = false;
    this.signal(DBUS_NAME, DBUS_PATH, DBUS_NAME, "NameOwnerChanged", [NM_NAME, old, ""]);
    this.owner++;
    for (const p of this.profiles) p.path = `${SETTINGS_PATH}/${++this.seq}`;
    for (const a of this.actives) {
      a.path = `${NM_PATH}/ActiveConnection/${++this.seq}`;
      a.device.path = `${NM_PATH}/Devices/${++this.seq}`;
    }
    this.running = true;
    this.signal(DBUS_NAME, DBUS_PATH, DBUS_NAME, "NameOwnerChanged", [NM_NAME, "", this.ownerName()]);
  }

  /** The bus daemon restarts: every connection ends (clients must reconnect). */
  busRestart(): void {
    this.lines.push("# system: dbus restarted");
    for (const b of this.buses) b.drop();
    this.buses.clear();
  }

  /** Connections still open (a closed client leaves none). */
  openConnections(): number {
    return [...this.buses].filter((b) => b.open).length;
  }

  // ---- the bus side -------------------------------------------------------------------------

  handle(c: DBusCall): unknown[] {
    const key = `${c.interface}.${c.member}`;
    const want = METHODS[key];
    if (want === undefined || (!this.hasAddConnection2 && c.member === "AddConnection2"))
      return this.fail(c, new DBusErrorReply("org.freedesktop.DBus.Error.UnknownMethod", `no method ${key}`));
    if (c.signature !== want)
      return this.fail(
        c,
        new DBusErrorReply(
          "org.freedesktop.DBus.Error.InvalidArgs",
          `${key}: signature ${c.signature}, want ${want}`,
        ),
      );
    topLevelTypes(want).forEach((t, i) => {
      if (t === "t" && typeof c.body[i] !== "bigint")
        throw new Error(`fake NM: ${key} argument ${i} (t) is not a BigInt`);
    });
    const body = overTheWire(c);
    if (c.destination === DBUS_NAME) return this.daemon(c, body);
    if (!this.running)
      return this.fail(
        c,
        new DBusErrorReply("org.freedesktop.DBus.Error.ServiceUnknown", `${NM_NAME} is not running`),
      );
    try {
      return this.nm(c, body);
    } catch (err) {
      if (err instanceof DBusErrorReply) return this.fail(c, err);
      throw err;
    }
  }

  private fail(c: DBusCall, err: DBusErrorReply): never {
    this.lines.push(`  -> ${err.errorName}: ${err.text}`);
    void c;
    throw err;
  }

  private daemon(c: DBusCall, body: unknown[]): unknown[] {
    if (c.member === "NameHasOwner") return [body[0] === NM_NAME && this.running];
    this.lines.push(`DBus.${c.member} ${body[0]}`);
    return [];
  }

  private label(path: string): string {
    const p = this.profiles.find((x) => x.path === path);
    if (p) return `"${val(p.settings.connection?.id)}"`;
    const a = this.actives.find((x) => x.path === path);
    if (a) return `"${val(a.profile.settings.connection?.id)}"`;
    const d = this.actives.find((x) => x.device.path === path);
    if (d) return d.device.iface;
    return path;
  }

  private nm(c: DBusCall, body: unknown[]): unknown[] {
    const short =
      c.interface === PROPERTIES
        ? ""
        : `${c.interface.replace(`${NM_NAME}.`, "").replace(NM_NAME, "Manager").replace("Settings.Connection", "Connection")}.`;
    const rec = (args: string) => this.lines.push(`${short}${c.member}${args ? ` ${args}` : ""}`);
    switch (`${c.interface}.${c.member}`) {
      case `${SETTINGS_IFACE}.AddConnection2`:
      case `${SETTINGS_IFACE}.AddConnection`: {
        const settings = body[0] as SettingsDict;
        const flags = c.member === "AddConnection" ? 0x1 : (body[1] as number);
        rec(
          `"${val(settings.connection?.id)}"${c.member === "AddConnection2" ? ` ${update2FlagNames(flags)}` : ""}`,
        );
        if (flags & ~ADD2_FLAGS)
          throw nmErr("Settings.InvalidArguments", `unknown flags 0x${flags.toString(16)}`);
        if (c.member === "AddConnection2" && Object.keys(body[2] as object).length)
          throw nmErr("Settings.InvalidArguments", "unknown argument");
        checkSettings(settings);
        const uuid = val(settings.connection?.uuid);
        if (this.profiles.some((p) => val(p.settings.connection?.uuid) === uuid))
          throw nmErr("Settings.UuidExists", `a connection with UUID ${uuid} already exists`);
        const p: FakeProfile = {
          path: `${SETTINGS_PATH}/${++this.seq}`,
          settings: this.stored(settings),
          autoconnectBlocked: false,
        };
        this.profiles.push(p);
        this.signal(NM_NAME, SETTINGS_PATH, SETTINGS_IFACE, "NewConnection", [p.path]);
        if (!(flags & 0x20) && val(settings.connection?.autoconnect) !== false) this.activate(p);
        return c.member === "AddConnection" ? [p.path] : [p.path, {}];
      }
      case `${SETTINGS_IFACE}.ListConnections`:
        rec("");
        return [this.profiles.map((p) => p.path)];
      case `${SETTINGS_IFACE}.GetConnectionByUuid`: {
        rec(String(body[0]));
        const p = this.profiles.find((x) => val(x.settings.connection?.uuid) === body[0]);
        if (!p) throw nmErr("Settings.InvalidConnection", "No connection with the UUID was found.");
        return [p.path];
      }
      case `${CONNECTION_IFACE}.GetSettings`: {
        const p = this.profileAt(c.path);
        rec(this.label(c.path));
        const out = clone(p.settings);
        delete out.wireguard?.["private-key"];
        if (out.wireguard?.peers)
          out.wireguard.peers = new Variant(
            "aa{sv}",
            (out.wireguard.peers.value as Dict[]).map((peer) => {
              const { "preshared-key": _psk, ...rest } = peer;
              return rest;
            }),
          );
        out.connection = { ...out.connection, timestamp: new Variant("t", 1700000000n) };
        return [out];
      }
      case `${CONNECTION_IFACE}.GetSecrets`: {
        const p = this.profileAt(c.path);
        rec(`${this.label(c.path)} ${body[0]}`);
        const wg = p.settings.wireguard ?? {};
        const peers = ((val(wg.peers) as Dict[] | undefined) ?? [])
          .filter((peer) => peer["preshared-key"])
          .map((peer) => ({ "public-key": peer["public-key"]!, "preshared-key": peer["preshared-key"]! }));
        const secrets: Dict = { peers: new Variant("aa{sv}", peers) };
        if (wg["private-key"]) secrets["private-key"] = wg["private-key"];
        return [{ wireguard: secrets }];
      }
      case `${CONNECTION_IFACE}.Update2`: {
        const p = this.profileAt(c.path);
        const flags = body[1] as number;
        rec(`${this.label(c.path)} ${update2FlagNames(flags)}`);
        if (flags & ~(this.hasNoReapply ? UPDATE2_FLAGS : UPDATE2_FLAGS & ~0x40))
          throw nmErr("Settings.InvalidArguments", `unknown flags 0x${flags.toString(16)}`);
        const settings = body[0] as SettingsDict;
        checkSettings(settings);
        p.settings = this.stored(settings);
        this.signal(NM_NAME, p.path, CONNECTION_IFACE, "Updated", []);
        // "usually, when the connection has autoconnect enabled and is modified, it becomes eligible to autoconnect right away"
        if (!(flags & 0x20)) {
          p.autoconnectBlocked = false;
          if (!this.actives.some((a) => a.profile === p) && val(p.settings.connection?.autoconnect) !== false)
            this.activate(p);
        }
        return [{}];
      }
      case `${CONNECTION_IFACE}.Delete`: {
        const p = this.profileAt(c.path);
        rec(this.label(c.path));
        this.deleteProfile(p);
        return [];
      }
      case `${MANAGER_IFACE}.ActivateConnection`: {
        const p = this.profileAt(body[0] as string);
        rec(this.label(p.path));
        const existing = this.actives.find((a) => a.profile === p);
        if (existing) this.deactivate(existing);
        return [this.activate(p).path];
      }
      case `${MANAGER_IFACE}.DeactivateConnection`: {
        rec(this.label(body[0] as string));
        const a = this.actives.find((x) => x.path === body[0]);
        if (!a) throw nmErr("ConnectionNotActive", "The connection was not active.");
        this.deactivate(a);
        return [];
      }
      case `${MANAGER_IFACE}.GetDeviceByIpIface`: {
        rec(String(body[0]));
        const a = this.actives.find((x) => x.device.iface === body[0]);
        if (!a) throw nmErr("UnknownDevice", "No device found for the requested iface.");
        return [a.device.path];
      }
      case `${DEVICE_IFACE}.GetAppliedConnection`: {
        const a = this.deviceAt(c.path);
        rec(a.device.iface);
        return [clone(a.device.applied), a.device.versionId];
      }
      case `${DEVICE_IFACE}.Reapply`: {
        const a = this.deviceAt(c.path);
        const [settings, versionId] = body as [SettingsDict, bigint];
        rec(`${a.device.iface} version=${versionId}`);
        if (versionId !== 0n && versionId !== a.device.versionId)
          throw nmErr(
            "Device.VersionIdMismatch",
            "Reapply failed because the connection version id did not match.",
          );
        const next = Object.keys(settings).length
          ? (checkSettings(settings), this.stored(settings))
          : clone(a.profile.settings);
        a.device.applied = this.reapplied(next);
        a.device.versionId++;
        this.configureKernel(a.device, true);
        return [];
      }
      case `${PROPERTIES}.Get`:
        return [this.property(c.path, body[0] as string, body[1] as string, rec)];
    }
    throw new DBusErrorReply("org.freedesktop.DBus.Error.UnknownMethod", `${c.interface}.${c.member}`);
  }

  private property(path: string, iface: string, name: string, rec: (a: string) => void): Variant {
    rec(
      `Get ${iface.replace(`${NM_NAME}.`, "").replace(NM_NAME, "Manager")}.${name}${path === NM_PATH ? "" : ` ${this.label(path)}`}`,
    );
    if (path === NM_PATH && iface === MANAGER_IFACE) {
      if (name === "ActiveConnections")
        return new Variant(
          "ao",
          this.actives.map((a) => a.path),
        );
      if (name === "NetworkingEnabled") return new Variant("b", this.networkingEnabled);
      if (name === "State") return new Variant("u", this.state);
      if (name === "Version") return new Variant("s", this.version);
    }
    const a = this.actives.find((x) => x.path === path);
    if (a && iface === ACTIVE_IFACE) {
      if (name === "Connection") return new Variant("o", a.profile.path);
      if (name === "State") return new Variant("u", a.state);
      if (name === "Id") return a.profile.settings.connection!.id!;
      if (name === "Uuid") return a.profile.settings.connection!.uuid!;
      if (name === "Devices") return new Variant("ao", [a.device.path]);
    }
    const d = this.actives.find((x) => x.device.path === path);
    if (d && iface === DEVICE_IFACE && (name === "Interface" || name === "IpInterface"))
      return new Variant("s", d.device.iface);
    if (!a && !d && path !== NM_PATH)
      throw new DBusErrorReply("org.freedesktop.DBus.Error.UnknownObject", `No such object path '${path}'`);
    throw new DBusErrorReply("org.freedesktop.DBus.Error.InvalidArgs", `No such property '${name}'`);
  }

  private profileAt(path: string): FakeProfile {
    const p = this.profiles.find((x) => x.path === path);
    if (!p)
      throw new DBusErrorReply("org.freedesktop.DBus.Error.UnknownObject", `No such object path '${path}'`);
    return p;
  }

  private deviceAt(path: string): FakeActive {
    const a = this.actives.find((x) => x.device.path === path);
    if (!a)
      throw new DBusErrorReply("org.freedesktop.DBus.Error.UnknownObject", `No such object path '${path}'`);
    return a;
  }

  /** What NM keeps of incoming settings: a PSK only with preshared-key-flags 0 (NM's default flags are NOT_REQUIRED). */
  private stored(settings: SettingsDict): SettingsDict {
    const out = clone(settings);
    const peers = out.wireguard?.peers;
    if (peers)
      out.wireguard!.peers = new Variant(
        "aa{sv}",
        (peers.value as Dict[]).map((p) => {
          if (val(p["preshared-key-flags"]) === 0) return p;
          const { "preshared-key": _dropped, ...rest } = p;
          return rest;
        }),
      );
    return out;
  }

  /** Reapply's applied connection; NM 1.52 loses the peers' PSKs on the way. */
  private reapplied(settings: SettingsDict): SettingsDict {
    if (!this.reapplyDropsPsks || !settings.wireguard?.peers) return settings;
    const out = clone(settings);
    out.wireguard!.peers = new Variant(
      "aa{sv}",
      (settings.wireguard.peers.value as Dict[]).map((p) => {
        const { "preshared-key": _lost, ...rest } = p;
        return rest;
      }),
    );
    return out;
  }

  private activate(p: FakeProfile): FakeActive {
    const iface = String(val(p.settings.connection?.["interface-name"]));
    const a: FakeActive = {
      path: `${NM_PATH}/ActiveConnection/${++this.seq}`,
      profile: p,
      state: ActiveState.ACTIVATING,
      device: { path: `${NM_PATH}/Devices/${++this.seq}`, iface, applied: clone(p.settings), versionId: 1n },
    };
    p.autoconnectBlocked = false;
    this.actives.push(a);
    this.managerChanged();
    this.setState(a, ActiveState.ACTIVATING);
    this.configureKernel(a.device, false);
    this.setState(a, ActiveState.ACTIVATED);
    return a;
  }

  private deactivate(a: FakeActive): void {
    this.setState(a, ActiveState.DEACTIVATING);
    this.wireguard.delete(a.device.iface);
    this.setState(a, ActiveState.DEACTIVATED);
    this.actives.splice(this.actives.indexOf(a), 1);
    this.managerChanged();
  }

  private deleteProfile(p: FakeProfile): void {
    const a = this.actives.find((x) => x.profile === p);
    if (a) this.deactivate(a);
    this.profiles.splice(this.profiles.indexOf(p), 1);
    this.signal(NM_NAME, p.path, CONNECTION_IFACE, "Removed", []);
    this.signal(NM_NAME, SETTINGS_PATH, SETTINGS_IFACE, "ConnectionRemoved", [p.path]);
  }

  /** The kernel device from the applied connection; `replace` sets every peer again (new sessions). */
  private configureKernel(d: FakeNmDevice, replace: boolean): void {
    const wg = d.applied.wireguard ?? {};
    if (!replace || !this.wireguard.devices.has(d.iface)) this.wireguard.create(d.iface);
    const dev = this.wireguard.devices.get(d.iface)!;
    const key = val(wg["private-key"]);
    if (typeof key === "string") dev.privateKey = key;
    dev.listenPort = (val(wg["listen-port"]) as number | undefined) ?? dev.listenPort;
    const peers = new Map<string, FakePeer>();
    for (const p of (val(wg.peers) as Dict[] | undefined) ?? []) {
      const psk = val(p["preshared-key"]);
      const endpoint = val(p.endpoint);
      peers.set(
        String(val(p["public-key"])),
        this.wireguard.newPeer({
          ...(typeof psk === "string" && { psk }),
          ...(typeof endpoint === "string" && { endpoint }),
          allowedIps: [...((val(p["allowed-ips"]) as string[] | undefined) ?? [])],
          keepalive: (val(p["persistent-keepalive"]) as number | undefined) ?? 0,
        }),
      );
    }
    dev.peers = peers;
  }

  private setState(a: FakeActive, state: number): void {
    a.state = state;
    this.signal(NM_NAME, a.path, ACTIVE_IFACE, "StateChanged", [state, 0]);
  }

  private managerChanged(): void {
    this.signal(NM_NAME, NM_PATH, PROPERTIES, "PropertiesChanged", [
      MANAGER_IFACE,
      {
        ActiveConnections: new Variant(
          "ao",
          this.actives.map((a) => a.path),
        ),
      },
      [],
    ]);
  }

  private ownerName(): string {
    return `:1.${100 + this.owner}`;
  }

  private signal(sender: string, path: string, iface: string, member: string, body: unknown[]): void {
    for (const b of this.buses) b.deliver(sender, { path, interface: iface, member, body });
  }
}
