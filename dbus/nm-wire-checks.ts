/**
 * What the fake NetworkManager (fake-nm.ts) refuses, as NetworkManager
 * and the bus would: a method signature that is not the method's, a `t`
 * that is not a BigInt, a body dbus-next cannot marshal, a settings key
 * NM does not know or a Variant of the wrong type. Pure checks, no state.
 */
import { Variant } from "dbus-next";
import { marshallMessage, messageToJsFmt } from "dbus-next/lib/marshall-compat.js";
import { unmarshall } from "dbus-next/lib/message.js";
import { DBUS_NAME, DBusErrorReply, PROPERTIES, type DBusCall } from "./bus.js";
import { NM_NAME } from "./client.js";
import { CONNECTION_IFACE } from "./connection.js";
import { DEVICE_IFACE } from "./device.js";
import { MANAGER_IFACE } from "./manager.js";
import { SETTINGS_IFACE } from "./settings.js";
import type { SettingsDict } from "./wireguard-settings.js";

type Dict = Record<string, Variant>;

/** In-signatures of the methods the fake answers; anything else is UnknownMethod. */
export const METHODS: Record<string, string> = {
  [`${SETTINGS_IFACE}.AddConnection2`]: "a{sa{sv}}ua{sv}",
  [`${SETTINGS_IFACE}.AddConnection`]: "a{sa{sv}}",
  [`${SETTINGS_IFACE}.ListConnections`]: "",
  [`${SETTINGS_IFACE}.GetConnectionByUuid`]: "s",
  [`${CONNECTION_IFACE}.GetSettings`]: "",
  [`${CONNECTION_IFACE}.GetSecrets`]: "s",
  [`${CONNECTION_IFACE}.Update2`]: "a{sa{sv}}ua{sv}",
  [`${CONNECTION_IFACE}.Delete`]: "",
  [`${MANAGER_IFACE}.ActivateConnection`]: "ooo",
  [`${MANAGER_IFACE}.DeactivateConnection`]: "o",
  [`${MANAGER_IFACE}.GetDeviceByIpIface`]: "s",
  [`${DEVICE_IFACE}.Reapply`]: "a{sa{sv}}tu",
  [`${DEVICE_IFACE}.GetAppliedConnection`]: "u",
  [`${PROPERTIES}.Get`]: "ss",
  [`${DBUS_NAME}.AddMatch`]: "s",
  [`${DBUS_NAME}.RemoveMatch`]: "s",
  [`${DBUS_NAME}.NameHasOwner`]: "s",
};

/** NM's type of every settings key Scope may send (nm-settings-dbus(5)). */
const SCHEMA: Record<string, Record<string, string>> = {
  connection: {
    id: "s",
    uuid: "s",
    type: "s",
    "interface-name": "s",
    autoconnect: "b",
    permissions: "as",
    timestamp: "t",
  },
  wireguard: {
    "private-key": "s",
    "private-key-flags": "u",
    "listen-port": "u",
    fwmark: "u",
    mtu: "u",
    "peer-routes": "b",
    "ip4-auto-default-route": "i",
    "ip6-auto-default-route": "i",
    peers: "aa{sv}",
  },
  ipv4: { method: "s", "address-data": "aa{sv}", "never-default": "b" },
  ipv6: { method: "s", "address-data": "aa{sv}", "never-default": "b" },
};
const PEER_SCHEMA: Record<string, string> = {
  "public-key": "s",
  endpoint: "s",
  "allowed-ips": "as",
  "persistent-keepalive": "u",
  "preshared-key": "s",
  "preshared-key-flags": "u",
};
const ADDRESS_SCHEMA: Record<string, string> = { address: "s", prefix: "u" };
export const SECRET_KEYS = new Set(["private-key", "preshared-key"]);

export const ADD2_FLAGS = 0x1 | 0x2 | 0x20;
export const UPDATE2_FLAGS = 0x7f;

export const nmErr = (name: string, text: string) => new DBusErrorReply(`${NM_NAME}.${name}`, text);
const invalidProperty = (text: string) => nmErr("Settings.Connection.InvalidProperty", text);

function checkDict(where: string, d: Dict, schema: Record<string, string>): void {
  for (const [k, v] of Object.entries(d)) {
    const want = schema[k];
    if (!want) throw invalidProperty(`${where}.${k}: unknown property`);
    if (!(v instanceof Variant) || v.signature !== want)
      throw invalidProperty(
        `${where}.${k}: can't set property of type '${want}' from value of type '${(v as Variant)?.signature}'`,
      );
  }
}

/** NM's view of a{sa{sv}}: every setting and key known, every Variant of the right type. */
export function checkSettings(settings: SettingsDict): void {
  for (const [name, setting] of Object.entries(settings)) {
    const schema = SCHEMA[name];
    if (!schema) throw nmErr("Settings.Connection.InvalidSetting", `${name}: unknown setting name`);
    checkDict(name, setting, schema);
    (setting.peers?.value as Dict[] | undefined)?.forEach((p, i) =>
      checkDict(`${name}.peers[${i}]`, p, PEER_SCHEMA),
    );
    (setting["address-data"]?.value as Dict[] | undefined)?.forEach((a, i) =>
      checkDict(`${name}.address-data[${i}]`, a, ADDRESS_SCHEMA),
    );
  }
}

/** The body as NetworkManager would get it: through dbus-next's marshaller and back. */
export function overTheWire(c: DBusCall): unknown[] {
  if (c.signature === "") return [];
  const msg = { serial: 1, type: 1, ...c, body: [...c.body] };
  const [buf] = marshallMessage(msg);
  return messageToJsFmt(unmarshall(buf)).body ?? [];
}

export const topLevelTypes = (sig: string): string[] => {
  const out: string[] = [];
  let i = 0;
  const one = (): void => {
    const ch = sig[i++];
    if (ch === "a") return one();
    const close = ch === "(" ? ")" : ch === "{" ? "}" : undefined;
    if (close) while (sig[i] !== close) one();
    if (close) i++;
  };
  while (i < sig.length) {
    const start = i;
    one();
    out.push(sig.slice(start, i));
  }
  return out;
};
