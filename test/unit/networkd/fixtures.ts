/** Named fixtures: fixed keys (so golden files are stable) and a small mesh to apply. */
import type { BackendContext, DesiredPeer, DesiredState } from "../../../src/core/backend.js";
import { wgKeyPairFromPrivate } from "../../../src/crypto/keys.js";

const key = (byte: number): string => Buffer.alloc(32, byte).toString("base64");

export const SELF_PRIVATE = key(1);
export const ALICE = wgKeyPairFromPrivate(key(2)).publicKey;
export const BOB = wgKeyPairFromPrivate(key(3)).publicKey;
export const HUB = wgKeyPairFromPrivate(key(4)).publicKey;
export const PSK_ALICE = key(0x51);
export const PSK_ALICE_NEXT = key(0x52);
export const PSK_HUB = key(0x53);

/** Every secret of the fixtures: none may show up on argv or in a .netdev/.network. */
export const SECRETS = [SELF_PRIVATE, PSK_ALICE, PSK_ALICE_NEXT, PSK_HUB];

export const alice: DesiredPeer = {
  publicKey: ALICE,
  endpoint: "203.0.113.7:51820",
  allowedIps: ["10.88.0.7/32"],
  persistentKeepalive: 25,
  presharedKey: PSK_ALICE,
};
export const hub: DesiredPeer = {
  publicKey: HUB,
  endpoint: "[2001:db8::1]:51820",
  allowedIps: ["10.88.0.0/16", "fd8a::/64"],
  presharedKey: PSK_HUB,
};
export const bob: DesiredPeer = { publicKey: BOB, allowedIps: ["10.88.0.9/32"] };

export const mesh = (peers: DesiredPeer[], over: Partial<DesiredState["iface"]> = {}): DesiredState => ({
  iface: {
    name: "scope0",
    privateKey: SELF_PRIVATE,
    listenPort: 51820,
    addresses: ["10.88.0.5/16", "fd8a::5/64"],
    ...over,
  },
  peers,
});

export interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

export function context(options: Record<string, string> = {}): BackendContext & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, msg, ...(fields && { fields }) });
  return {
    network: "corp",
    stateDir: "/var/lib/scope/corp",
    options,
    logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    lines,
  };
}
