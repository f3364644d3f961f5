// dbus-next's own wire codec, used by the fake NetworkManager (fake-nm.ts)
// to put every call through the same marshalling the real bus does.
declare module "dbus-next/lib/marshall-compat.js" {
  export function marshallMessage(msg: unknown): [Buffer, unknown[]];
  export function messageToJsFmt(msg: unknown): { body: unknown[] };
}
declare module "dbus-next/lib/message.js" {
  export function unmarshall(buf: Buffer): unknown;
}
