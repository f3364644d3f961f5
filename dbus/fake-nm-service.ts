/**
 * The fake NetworkManager (fake-nm.ts) served on a real bus: it owns
 * org.freedesktop.NetworkManager on a dbus-next connection, answers the
 * method calls through FakeNetworkManager.handle and forwards its signals.
 * With `dbus-run-session` this runs the real client path (DBusNextConnection,
 * dbus-daemon match rules, wire marshalling, error names) without root or
 * a real NetworkManager: a smoke tier between the unit tests and the VM.
 */
import { Message, type MessageBus } from "dbus-next";
import { DBusErrorReply, PROPERTIES, type BusConnection, type Signal } from "./bus.js";
import { NM_NAME } from "./client.js";
import { ACTIVE_IFACE } from "./active.js";
import { CONNECTION_IFACE } from "./connection.js";
import type { FakeNetworkManager } from "./fake-nm.js";
import { SETTINGS_IFACE } from "./settings.js";

/** Out-signatures of what the fake answers. */
const OUT: Record<string, string> = {
  AddConnection2: "oa{sv}",
  AddConnection: "o",
  ListConnections: "ao",
  GetConnectionByUuid: "o",
  GetSettings: "a{sa{sv}}",
  GetSecrets: "a{sa{sv}}",
  Update2: "a{sv}",
  Delete: "",
  ActivateConnection: "o",
  DeactivateConnection: "",
  GetDeviceByIpIface: "o",
  GetAppliedConnection: "a{sa{sv}}t",
  Reapply: "",
  Get: "v",
};

const SIGNALS: [string, string, string][] = [
  [SETTINGS_IFACE, "ConnectionRemoved", "o"],
  [SETTINGS_IFACE, "NewConnection", "o"],
  [PROPERTIES, "PropertiesChanged", "sa{sv}as"],
  [ACTIVE_IFACE, "StateChanged", "uu"],
  [CONNECTION_IFACE, "Updated", ""],
  [CONNECTION_IFACE, "Removed", ""],
];

type RawMessage = Message & { type: number };

export interface FakeNmService {
  /** NetworkManager restarts: the name is released and taken again (a real NameOwnerChanged), paths change. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function serveFakeNetworkManager(
  bus: MessageBus,
  nm: FakeNetworkManager,
): Promise<FakeNmService> {
  const take = async () => {
    const reply = await bus.requestName(NM_NAME, 0x4);
    if (reply !== 1 && reply !== 4) throw new Error(`${NM_NAME} is taken on this bus`);
  };
  await take();
  bus.addMethodHandler((raw: RawMessage) => {
    if (raw.type !== 1 || !(raw.member in OUT)) return false;
    const msg = raw;
    void (async () => {
      try {
        const body = await nm.handle({
          destination: NM_NAME,
          path: msg.path,
          interface: msg.interface,
          member: msg.member,
          signature: msg.signature ?? "",
          body: msg.body ?? [],
        });
        bus.send(Message.newMethodReturn(msg, OUT[msg.member], body));
      } catch (err) {
        const e =
          err instanceof DBusErrorReply
            ? err
            : new DBusErrorReply("org.freedesktop.DBus.Error.Failed", String((err as Error).message));
        // dbus-next types newError(msg: string); it takes the Message.
        bus.send(Message.newError(msg as unknown as string, e.errorName, e.text));
      }
    })();
    return true;
  });
  const tap: BusConnection = await nm.factory();
  for (const [iface, member, signature] of SIGNALS)
    await tap.subscribe({ sender: NM_NAME, interface: iface, member }, (s: Signal) =>
      bus.send(Message.newSignal(s.path, s.interface, s.member, signature, s.body)),
    );
  return {
    async restart() {
      await bus.releaseName(NM_NAME);
      nm.restart();
      await take();
    },
    async close() {
      tap.close();
      await bus.releaseName(NM_NAME).catch(() => undefined);
    },
  };
}
