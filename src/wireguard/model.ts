/**
 * What the backend reads back from a live interface. Both control channels
 * (UAPI `get=1` and `wg show IFACE dump`) parse into these shapes, so the
 * diff and the stats code do not know which flavour runs.
 *
 * Keys are base64 like everywhere else in Scope; the UAPI codec converts
 * to and from hex at the socket.
 */
export interface PeerState {
  publicKey: string;
  /** Secret. Absent when WireGuard reports the all-zero key. */
  presharedKey?: string;
  /** Canonical IP:port; what WireGuard uses now, including roaming. */
  endpoint?: string;
  /** Canonical, sorted. */
  allowedIps: string[];
  /** Seconds, 0 = off. */
  persistentKeepalive: number;
  /** Epoch ms, absent when no handshake has completed. */
  lastHandshakeMs?: number;
  rxBytes: number;
  txBytes: number;
}

export interface DeviceState {
  /** Secret. Absent when unset. */
  privateKey?: string;
  listenPort?: number;
  peers: PeerState[];
}

/** Link-level state as `ip -j address show` reports it. */
export interface LinkState {
  up: boolean;
  mtu: number;
  /** Canonical "addr/len", sorted; link-local (scope link) addresses are left out: the kernel owns them. */
  addresses: string[];
}
