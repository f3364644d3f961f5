/**
 * The prober's UDP socket: one dual-stack socket on probe_port that carries
 * authenticated probes (src/core/probe) and reflector requests for netcheck
 * (src/core/reflector). Replies of both kinds arrive here; the magic number
 * tells them apart. Addresses are normalised ("::ffff:1.2.3.4" → "1.2.3.4").
 */
import { createSocket, type Socket } from "node:dgram";
import { normalizeAddress } from "../core/ip.js";
import type { Endpoint } from "../core/protocol.js";
import { REFLECTOR_MAGIC } from "../core/reflector.js";

export type DatagramHandler = (from: Endpoint, bytes: Uint8Array) => void;

/** What the daemon needs of its probe socket; ProbeSocket is the real one, the simulator has its own. */
export interface ProbeTransport {
  onProbe: DatagramHandler;
  onReflector: DatagramHandler;
  open(): Promise<void>;
  send(to: Endpoint, bytes: Uint8Array): void;
  close(): void;
}

/**
 * Socket buffers for a burst: a rotation sends one ~2 KB kex datagram (two
 * fragments in the tunnel) to each of 49 peers at once and takes 49 back
 * while the loop is busy with the crypto; with the default 208 KB the
 * 50-peer lab counted RcvbufErrors. Capped by net.core.[rw]mem_max. The
 * lab's SndbufErrors stayed (docs/security.md): they come from further down.
 */
const BUFFERS = { recvBufferSize: 2 << 20, sendBufferSize: 2 << 20 };

export class ProbeSocket implements ProbeTransport {
  private sock: Socket | undefined;
  private v6 = true;
  onProbe: DatagramHandler = () => undefined;
  onReflector: DatagramHandler = () => undefined;

  constructor(private readonly port: number) {}

  async open(): Promise<void> {
    try {
      this.sock = await bind(createSocket({ type: "udp6", ipv6Only: false, ...BUFFERS }), this.port, "::");
    } catch {
      // No IPv6 on this host: IPv4 alone still works.
      this.v6 = false;
      this.sock = await bind(createSocket({ type: "udp4", ...BUFFERS }), this.port, "0.0.0.0");
    }
    this.sock.on("message", (msg, rinfo) => {
      const from = { address: normalizeAddress(rinfo.address), port: rinfo.port };
      const isReflector = REFLECTOR_MAGIC.every((b, i) => msg[i] === b);
      (isReflector ? this.onReflector : this.onProbe)(
        from,
        new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength),
      );
    });
    // Send errors (unreachable networks while probing IPv6, say) are expected; never crash on them.
    this.sock.on("error", () => undefined);
  }

  send(to: Endpoint, bytes: Uint8Array): void {
    if (!this.sock) return;
    const v4 = !to.address.includes(":");
    if (!v4 && !this.v6) return;
    const address = v4 && this.v6 ? `::ffff:${to.address}` : to.address;
    this.sock.send(bytes, to.port, address, () => undefined);
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}

function bind(sock: Socket, port: number, address: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind({ port, address, exclusive: true }, () => {
      sock.off("error", reject);
      resolve(sock);
    });
  });
}
