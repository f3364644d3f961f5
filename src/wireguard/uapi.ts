/**
 * WireGuard's cross-platform configuration protocol (UAPI), as spoken by
 * wireguard-go on /var/run/wireguard/IFACE.sock. Modelled on wireguard-go
 * device/uapi.go: a request is "get=1\n\n" or "set=1\n" + key=value lines +
 * a blank line; every reply ends with "errno=N\n\n" (0 = ok, negative
 * Linux errno otherwise). Keys are hex on the wire, base64 in Scope.
 *
 * The codec (parseGet, encodeSet, encodeRetrigger) is pure; the socket is
 * behind UapiTransport so tests replay text without a daemon.
 */
import { createConnection } from "node:net";
import type { DesiredState } from "../core/backend.js";
import { canonicalCidrs, canonicalEndpoint } from "../core/ip.js";
import type { Plan } from "./diff.js";
import type { DeviceState, PeerState } from "./model.js";

/** wireguard-go ipc/uapi_unix.go: the codes a reply's errno can carry. */
export const UAPI_ERRNO: Readonly<Record<number, string>> = {
  [-5]: "EIO (I/O failure)",
  [-71]: "EPROTO (malformed line)",
  [-22]: "EINVAL (invalid key or value)",
  [-98]: "EADDRINUSE (listen port in use)",
  [-55]: "unknown error",
};

export class UapiError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = "UapiError";
  }
}

/**
 * The socket seam. Contract:
 * - one request per call: `text` is a whole "get=1\n\n" or "set=1\n...\n\n";
 * - resolves with the whole reply, ending "errno=N\n\n" (a reply with
 *   errno != 0 resolves too: checkErrno/parseGet turn it into a UapiError);
 * - rejects with UapiUnavailableError when nothing listens (the interface
 *   does not exist), with any other Error for a transport failure (timeout,
 *   connection closed mid-reply);
 * - holds no state between calls, so concurrent requests are independent.
 * Real: unixSocketTransport; fake: FakeWireGuard.transport (fakes.ts).
 */
export interface UapiTransport {
  request(text: string): Promise<string>;
}

/** Thrown by a transport when nothing listens: the interface does not exist (yet). */
export class UapiUnavailableError extends Error {
  constructor(readonly path: string) {
    super(`no WireGuard UAPI socket at ${path}`);
    this.name = "UapiUnavailableError";
  }
}

const ZERO_KEY_HEX = "0".repeat(64);

export function keyToHex(base64: string): string {
  const raw = Buffer.from(base64, "base64");
  if (raw.length !== 32 || raw.toString("base64") !== base64)
    throw new Error("WireGuard key must be 32 bytes of base64");
  return raw.toString("hex");
}

export function keyFromHex(hex: string): string {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error("UAPI key must be 64 hex digits");
  return Buffer.from(hex, "hex").toString("base64");
}

/**
 * Public keys of get replies, hex → base64. The daemon reads stats every
 * 50 ms to 5 s, each time converting the same peers' keys (a share of an
 * idle daemon's CPU in the 40-edge lab). Public keys only: no secret is kept.
 */
const publicKeys = new Map<string, string>();
function publicKeyFromHex(hex: string): string {
  let key = publicKeys.get(hex);
  if (key === undefined) {
    key = keyFromHex(hex);
    if (publicKeys.size >= 4096) publicKeys.clear();
    publicKeys.set(hex, key);
  }
  return key;
}

const REPLY_END = /(?:^|\n)errno=(-?\d+)\n\n$/;

/** True once `buffered` holds a whole reply. Lets a transport stop reading without a length prefix. */
export const isCompleteReply = (buffered: string): boolean => REPLY_END.test(buffered);

/** The errno of a complete reply; throws UapiError when it is not 0. */
export function checkErrno(reply: string, op: string): void {
  const m = REPLY_END.exec(reply);
  if (!m) throw new UapiError(-71, `${op}: reply without errno line`);
  const errno = Number(m[1]);
  if (errno !== 0) throw new UapiError(errno, `${op}: errno=${errno} ${UAPI_ERRNO[errno] ?? ""}`.trim());
}

export interface ParsedGet {
  state: DeviceState;
  /** Keys this version does not know. Ignored, not fatal: newer wireguard-go forks add keys (jc=, h1=, ...). */
  ignored: string[];
}

/**
 * Parse a `get=1` reply. Flat switch per key like uapi.go; "public_key"
 * moves from the device section into a new peer section.
 */
export function parseGet(reply: string): ParsedGet {
  checkErrno(reply, "get");
  const state: DeviceState = { peers: [] };
  const ignored: string[] = [];
  let peer: (PeerState & { hsSec: number; hsNsec: number }) | undefined;
  const finishPeer = (): void => {
    if (!peer) return;
    const { hsSec, hsNsec, ...rest } = peer;
    const ms = hsSec * 1000 + Math.floor(hsNsec / 1e6);
    state.peers.push({
      ...rest,
      allowedIps: canonicalCidrs(rest.allowedIps),
      lastHandshakeMs: ms > 0 ? ms : undefined,
    });
    peer = undefined;
  };
  for (const line of reply.split("\n")) {
    if (line === "") break;
    const eq = line.indexOf("=");
    if (eq < 0) throw new UapiError(-71, `get: malformed line ${JSON.stringify(line)}`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === "public_key") {
      finishPeer();
      peer = {
        publicKey: publicKeyFromHex(value),
        allowedIps: [],
        persistentKeepalive: 0,
        rxBytes: 0,
        txBytes: 0,
        hsSec: 0,
        hsNsec: 0,
      };
      continue;
    }
    if (key === "errno") break;
    if (!peer) {
      switch (key) {
        case "private_key":
          if (value !== ZERO_KEY_HEX) state.privateKey = keyFromHex(value);
          break;
        case "listen_port":
          state.listenPort = uintValue(key, value);
          break;
        default:
          ignored.push(key);
      }
      continue;
    }
    switch (key) {
      case "preshared_key":
        if (value !== ZERO_KEY_HEX) peer.presharedKey = keyFromHex(value);
        break;
      case "endpoint":
        peer.endpoint = canonicalEndpoint(value);
        break;
      case "allowed_ip":
        peer.allowedIps.push(value);
        break;
      case "persistent_keepalive_interval":
        peer.persistentKeepalive = uintValue(key, value);
        break;
      case "last_handshake_time_sec":
        peer.hsSec = uintValue(key, value);
        break;
      case "last_handshake_time_nsec":
        peer.hsNsec = uintValue(key, value);
        break;
      case "rx_bytes":
        peer.rxBytes = uintValue(key, value);
        break;
      case "tx_bytes":
        peer.txBytes = uintValue(key, value);
        break;
      case "protocol_version":
        break;
      default:
        ignored.push(key);
    }
  }
  finishPeer();
  return { state, ignored };
}

function uintValue(key: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new UapiError(-22, `get: ${key} is not a number`);
  return Number(value);
}

/** Lines that create or update one peer in full; shared by additions and the handshake trigger. */
function peerLines(p: {
  publicKey: string;
  presharedKey?: string;
  endpoint?: string;
  allowedIps: readonly string[];
  keepalive: number;
}): string[] {
  const out = [`public_key=${keyToHex(p.publicKey)}`];
  if (p.presharedKey) out.push(`preshared_key=${keyToHex(p.presharedKey)}`);
  if (p.endpoint) out.push(`endpoint=${p.endpoint}`);
  if (p.keepalive) out.push(`persistent_keepalive_interval=${p.keepalive}`);
  out.push("replace_allowed_ips=true", ...p.allowedIps.map((ip) => `allowed_ip=${ip}`));
  return out;
}

/**
 * A `set=1` request that sends only the plan. Secrets come from `desired`
 * (normalized). Existing peers are addressed with update_only=true so a
 * peer removed concurrently is not silently re-created half-configured.
 */
export function encodeSet(plan: Plan, desired: DesiredState): string {
  const lines = ["set=1"];
  for (const c of plan.device) {
    if (c.kind === "private-key") lines.push(`private_key=${keyToHex(desired.iface.privateKey)}`);
    else lines.push(`listen_port=${c.to}`);
  }
  const wanted = new Map(desired.peers.map((p) => [p.publicKey, p]));
  const updates = new Map<string, string[]>();
  for (const c of plan.peers) {
    const hex = keyToHex(c.publicKey);
    switch (c.kind) {
      case "remove":
        lines.push(`public_key=${hex}`, "remove=true");
        break;
      case "add":
        lines.push(...peerLines({ ...c, presharedKey: wanted.get(c.publicKey)?.presharedKey }));
        break;
      default: {
        const body = updates.get(c.publicKey) ?? [`public_key=${hex}`, "update_only=true"];
        updates.set(c.publicKey, body);
        if (c.kind === "endpoint") body.push(`endpoint=${c.to}`);
        else if (c.kind === "keepalive") body.push(`persistent_keepalive_interval=${c.to}`);
        else if (c.kind === "allowed-ips")
          body.push("replace_allowed_ips=true", ...c.to.map((ip) => `allowed_ip=${ip}`));
        else
          body.push(
            `preshared_key=${c.to === "new" ? keyToHex(wanted.get(c.publicKey)!.presharedKey!) : ZERO_KEY_HEX}`,
          );
      }
    }
  }
  for (const body of updates.values()) lines.push(...body);
  return `${lines.join("\n")}\n\n`;
}

/**
 * Remove the peer and add it back with the same live config (including the
 * endpoint WireGuard learned by roaming), with keepalive switched on for the
 * re-add and then restored in the same request.
 *
 * Why: wireguard-go (and the kernel) send at most one initiation per
 * RekeyTimeout (5 s) per peer, and toggling keepalive on an existing peer is
 * rate-limited the same way. A freshly created peer has no "last sent"
 * time, and turning keepalive on for it makes handlePostConfig send a
 * keepalive, which starts a handshake at once. Verified on wireguard-go
 * 0.0.20220316: docs/backends.md.
 */
export function encodeRetrigger(p: PeerState): string {
  const hex = keyToHex(p.publicKey);
  const lines = [
    "set=1",
    `public_key=${hex}`,
    "remove=true",
    ...peerLines({ ...p, keepalive: p.persistentKeepalive || 1 }),
  ];
  if (!p.persistentKeepalive)
    lines.push(`public_key=${hex}`, "update_only=true", "persistent_keepalive_interval=0");
  return `${lines.join("\n")}\n\n`;
}

/** The real socket. One connection per request keeps the reply framing trivial. */
export function unixSocketTransport(path: string, timeoutMs = 5000): UapiTransport {
  return {
    request: (text) =>
      new Promise<string>((resolve, reject) => {
        let reply = "";
        const sock = createConnection(path);
        const timer = setTimeout(
          () => sock.destroy(new Error(`UAPI ${path}: no reply within ${timeoutMs} ms`)),
          timeoutMs,
        );
        sock.setEncoding("utf8");
        sock.on("connect", () => sock.write(text));
        sock.on("data", (chunk: string) => {
          reply += chunk;
          if (isCompleteReply(reply)) {
            clearTimeout(timer);
            sock.end();
            resolve(reply);
          }
        });
        sock.on("error", (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(err.code === "ENOENT" || err.code === "ECONNREFUSED" ? new UapiUnavailableError(path) : err);
        });
        sock.on("close", () => {
          clearTimeout(timer);
          if (!isCompleteReply(reply))
            reject(new Error(`UAPI ${path}: connection closed before the reply ended`));
        });
      }),
  };
}
