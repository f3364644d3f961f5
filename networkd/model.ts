/**
 * What Scope writes for one network, as plain data: the .netdev and .network
 * contents as structures (render.ts turns them into text, parse.ts turns text
 * back into them) and the names of the files. Secrets never appear here:
 * the model holds the paths of key files, and render.ts returns key
 * contents separately.
 */

/** [WireGuardPeer] */
export interface NetdevPeer {
  publicKey: string;
  presharedKeyFile?: string;
  /** In file order, as written; empty when the peer routes nothing. */
  allowedIps: string[];
  endpoint?: string;
  /** 1..65535; absent means off. */
  persistentKeepalive?: number;
  routeTable?: string;
  routeMetric?: number;
}

/** [NetDev] + [WireGuard] */
export interface NetdevConfig {
  name: string;
  kind: string;
  description?: string;
  mtuBytes?: number;
  privateKeyFile?: string;
  /** Absent means "auto" (networkd derives a port from the interface name). */
  listenPort?: number;
  firewallMark?: number;
  /** "off", "main", a name from networkd.conf, or a number. */
  routeTable?: string;
  routeMetric?: number;
  peers: NetdevPeer[];
}

/** The parts of a .network file Scope writes. */
export interface NetworkConfig {
  matchName: string;
  addresses: string[];
  requiredForOnline?: string;
  activationPolicy?: string;
  linkLocalAddressing?: string;
  ipv6AcceptRA?: string;
}

/**
 * Network names become file names and must keep one network's files apart
 * from another's: no "." (our separator), no "/", nothing a shell or systemd
 * specifier would read ("%"). The one rule (src/core/names.ts) guarantees it.
 */
export { checkNetworkName } from "../src/core/names.js";

export const DEFAULT_NETWORK_DIR = "/etc/systemd/network";

/**
 * File names for network NET. Everything starts with "50-scope-NET." so one
 * prefix test finds exactly Scope's files for this network and never another
 * network's ("50-scope-corp-eu." does not start with "50-scope-corp.").
 * 50 sorts before distribution defaults (networkd recommends < 70) and
 * after early admin overrides.
 */
export const unitNames = (network: string) => {
  const base = `50-scope-${network}`;
  return {
    prefix: `${base}.`,
    netdev: `${base}.netdev`,
    network: `${base}.network`,
    privateKey: `${base}.key`,
    /** One PSK file per peer, named by a digest of its public key (base64 has "/" in it). */
    psk: (publicKeyDigest: string) => `${base}.peer-${publicKeyDigest}.psk`,
  };
};
