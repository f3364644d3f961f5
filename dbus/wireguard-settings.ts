/**
 * A WireGuard connection profile in NetworkManager's settings format
 * (a{sa{sv}}: setting name → key → Variant), both ways, no I/O.
 *
 * Keys and types from nm-settings-dbus(5) ("wireguard", "ipv4", "ipv6",
 * "connection") and libnm's nm-setting-wireguard.c, which (de)serializes
 * the peers:
 *
 *   connection  id s, uuid s, type s ("wireguard"), interface-name s
 *               (required for wireguard), autoconnect b
 *   wireguard   private-key s (base64; a secret), private-key-flags u,
 *               listen-port u, fwmark u, mtu u, peer-routes b,
 *               peers aa{sv}: public-key s, endpoint s, allowed-ips as,
 *               persistent-keepalive u, preshared-key s (a secret),
 *               preshared-key-flags u
 *   ipv4/ipv6   method s, address-data aa{sv}: address s, prefix u
 *
 * Every Variant gets its signature here, in one place: dbus-next cannot
 * guess (a JS number could be y, u, i or t; an array as or aa{sv}).
 * WireGuard keys are strings in NM's API, not ay.
 *
 * Secret flags (NMSettingSecretFlags): 0 NONE = NM stores the secret
 * itself (system connection, keyfile root:root 0600), 1 AGENT_OWNED,
 * 2 NOT_SAVED, 4 NOT_REQUIRED. A peer's preshared-key-flags defaults to
 * NOT_REQUIRED: libnm leaves the key out of the peer dictionary when the
 * flags are 4, and a PSK sent without preshared-key-flags = 0 is not kept
 * (issue 12). So a peer with a PSK always carries preshared-key-flags 0.
 * A peer without one carries no flags: flags 0 without a key would make
 * NM ask a secret agent for it at activation (need_secrets() in
 * nm-setting-wireguard.c skips only peers flagged NOT_REQUIRED).
 *
 * WireGuard supports only ipv4.method manual/disabled and ipv6.method
 * manual/ignore/link-local/disabled (verify() in nm-setting-wireguard.c).
 */
import { Variant } from "dbus-next";
import { ipVersion } from "../src/core/ip.js";

export type SettingsDict = Record<string, Record<string, Variant>>;

export const SECRET_FLAG_NONE = 0;
export const SECRET_FLAG_NOT_REQUIRED = 4;

export interface ProfilePeer {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  /** Seconds; 0 = off (left out of the dictionary, as libnm does). */
  persistentKeepalive: number;
  /** Secret. */
  presharedKey?: string;
}

export interface WireGuardProfile {
  id: string;
  uuid: string;
  interfaceName: string;
  autoconnect: boolean;
  /** Secret. Absent in GetSettings (NM never returns secrets there): merge GetSecrets. */
  privateKey?: string;
  listenPort?: number;
  fwmark?: number;
  mtu?: number;
  /** Routes for every allowed IP; Scope turns them off (docs/backends.md). */
  peerRoutes: boolean;
  /** "10.88.0.5/16", "fd8a::5/64". */
  addresses: string[];
  peers: ProfilePeer[];
}

const s = (v: string) => new Variant("s", v);
const u = (v: number) => new Variant("u", v);
const b = (v: boolean) => new Variant("b", v);

function ipSetting(addresses: string[], v6: boolean): Record<string, Variant> {
  const mine = addresses.filter((a) => ipVersion(a.split("/")[0]!) === (v6 ? 6 : 4));
  if (!mine.length) return { method: s(v6 ? "ignore" : "disabled") };
  const data = mine.map((a) => {
    const [address, prefix] = a.split("/") as [string, string];
    return { address: s(address), prefix: u(Number(prefix)) };
  });
  return { method: s("manual"), "address-data": new Variant("aa{sv}", data) };
}

function peerDict(p: ProfilePeer): Record<string, Variant> {
  const d: Record<string, Variant> = { "public-key": s(p.publicKey) };
  if (p.endpoint) d.endpoint = s(p.endpoint);
  d["allowed-ips"] = new Variant("as", p.allowedIps);
  if (p.persistentKeepalive) d["persistent-keepalive"] = u(p.persistentKeepalive);
  if (p.presharedKey !== undefined) {
    d["preshared-key"] = s(p.presharedKey);
    d["preshared-key-flags"] = u(SECRET_FLAG_NONE);
  }
  return d;
}

/** The full settings for AddConnection2 / Update2 (Update2 replaces every setting, so always all of them). */
export function encodeProfile(p: WireGuardProfile): SettingsDict {
  const wg: Record<string, Variant> = {};
  if (p.privateKey !== undefined) {
    wg["private-key"] = s(p.privateKey);
    wg["private-key-flags"] = u(SECRET_FLAG_NONE);
  }
  if (p.listenPort !== undefined) wg["listen-port"] = u(p.listenPort);
  if (p.fwmark !== undefined) wg.fwmark = u(p.fwmark);
  if (p.mtu !== undefined) wg.mtu = u(p.mtu);
  wg["peer-routes"] = b(p.peerRoutes);
  wg.peers = new Variant("aa{sv}", p.peers.map(peerDict));
  return {
    connection: {
      id: s(p.id),
      uuid: s(p.uuid),
      type: s("wireguard"),
      "interface-name": s(p.interfaceName),
      autoconnect: b(p.autoconnect),
    },
    wireguard: wg,
    ipv4: ipSetting(p.addresses, false),
    ipv6: ipSetting(p.addresses, true),
  };
}

const val = (v: Variant | undefined): unknown => (v instanceof Variant ? v.value : v);
const str = (v: Variant | undefined): string | undefined => {
  const x = val(v);
  return typeof x === "string" ? x : undefined;
};
const num = (v: Variant | undefined): number | undefined => {
  const x = val(v);
  return typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : undefined;
};
type Dict = Record<string, Variant>;
const dicts = (v: Variant | undefined): Dict[] => (Array.isArray(val(v)) ? (val(v) as Dict[]) : []);

function addressesOf(setting: Dict | undefined): string[] {
  return dicts(setting?.["address-data"]).map((a) => `${str(a.address)}/${num(a.prefix)}`);
}

/**
 * A profile from GetSettings (+ GetSecrets("wireguard") merged in when
 * given). Keys NM adds on its own (timestamps, defaults) are ignored; a
 * profile that is not ours to read (no wireguard setting) yields undefined.
 */
export function decodeProfile(settings: SettingsDict, secrets?: SettingsDict): WireGuardProfile | undefined {
  const c = settings.connection ?? {};
  const wg = settings.wireguard;
  if (str(c.type) !== "wireguard" || !wg) return undefined;
  const secretWg = secrets?.wireguard ?? {};
  const psks = new Map<string, string>();
  for (const p of dicts(secretWg.peers)) {
    const key = str(p["public-key"]);
    const psk = str(p["preshared-key"]);
    if (key && psk) psks.set(key, psk);
  }
  const peers = dicts(wg.peers).map((p): ProfilePeer => {
    const publicKey = str(p["public-key"]) ?? "";
    const allowed = val(p["allowed-ips"]);
    const presharedKey = str(p["preshared-key"]) ?? psks.get(publicKey);
    return {
      publicKey,
      ...(str(p.endpoint) !== undefined && { endpoint: str(p.endpoint) }),
      allowedIps: Array.isArray(allowed) ? (allowed as string[]) : [],
      persistentKeepalive: num(p["persistent-keepalive"]) ?? 0,
      ...(presharedKey !== undefined && { presharedKey }),
    };
  });
  const privateKey = str(secretWg["private-key"]) ?? str(wg["private-key"]);
  const opt = (k: string) => num(wg[k]);
  return {
    id: str(c.id) ?? "",
    uuid: str(c.uuid) ?? "",
    interfaceName: str(c["interface-name"]) ?? "",
    autoconnect: val(c.autoconnect) !== false,
    ...(privateKey !== undefined && { privateKey }),
    ...(opt("listen-port") && { listenPort: opt("listen-port") }),
    ...(opt("fwmark") && { fwmark: opt("fwmark") }),
    ...(opt("mtu") && { mtu: opt("mtu") }),
    peerRoutes: val(wg["peer-routes"]) !== false,
    addresses: [...addressesOf(settings.ipv4), ...addressesOf(settings.ipv6)],
    peers,
  };
}
