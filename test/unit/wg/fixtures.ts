/** Named keys and peers so the scenarios read as stories. All keys are fake, fixed bytes. */
import type { BackendContext, BackendLogger, DesiredPeer, DesiredState } from "../../../src/core/backend.js";
import { shortKey, wgKeyPairFromPrivate } from "../../../src/crypto/keys.js";
import type { DeviceState, PeerState } from "../../../src/wireguard/model.js";

const key = (byte: number): string => Buffer.alloc(32, byte).toString("base64");

export const PRIVATE_A = key(0x01);
export const PRIVATE_A2 = key(0x11);
/** shortKey of PRIVATE_A's public half, as change lines print it. */
export const SHORT_A = shortKey(wgKeyPairFromPrivate(PRIVATE_A).publicKey);
export const PEER_B = key(0x02);
export const PEER_C = key(0x03);
export const PSK_1 = key(0x09);
export const PSK_2 = key(0x0a);
/** Every secret a test uses, base64 and hex, for leak checks. */
export const SECRETS = [PRIVATE_A, PRIVATE_A2, PSK_1, PSK_2].flatMap((k) => [
  k,
  Buffer.from(k, "base64").toString("hex"),
]);

export const hex = (b64: string): string => Buffer.from(b64, "base64").toString("hex");

export const peerB: DesiredPeer = {
  publicKey: PEER_B,
  endpoint: "192.0.2.2:51820",
  allowedIps: ["10.88.0.2/32"],
};
export const peerC: DesiredPeer = {
  publicKey: PEER_C,
  endpoint: "[2001:db8::3]:51820",
  allowedIps: ["10.88.0.3/32", "fd88::3/128"],
  persistentKeepalive: 25,
};

/** A peer as the device reports it: defaults for what a test does not care about. */
export const live = (p: Partial<PeerState> & { publicKey: string }): PeerState => ({
  allowedIps: [],
  persistentKeepalive: 0,
  rxBytes: 0,
  txBytes: 0,
  ...p,
});
export const device = (peers: PeerState[]): DeviceState => ({
  privateKey: PRIVATE_A,
  listenPort: 51820,
  peers,
});

export const stateWith = (peers: DesiredPeer[], over: Partial<DesiredState["iface"]> = {}): DesiredState => ({
  iface: { name: "scope0", privateKey: PRIVATE_A, listenPort: 51820, addresses: ["10.88.0.1/16"], ...over },
  peers,
});

export interface CapturedLog extends BackendLogger {
  lines: string[];
}

/** A logger that keeps every line with its fields as JSON, so tests can grep it for secrets. */
export function captureLogger(): CapturedLog {
  const lines: string[] = [];
  const at =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
    };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export const contextFor = (logger: BackendLogger, options: Record<string, string> = {}): BackendContext => ({
  network: "corp",
  stateDir: "/var/lib/scope/corp",
  logger,
  options,
});
