/**
 * How a client trusts the registry over TLS (issue 14): the system's CAs,
 * or the one CA file given (`ca_file` in NET.conf, `--ca-file` on `scope
 * join`); and optionally a pin, the SHA-256 of the certificate's public key
 * (`sha256/BASE64`, as `openssl x509 -pubkey | openssl pkey -pubin -outform
 * der | openssl dgst -sha256 -binary | base64` prints it), checked on top
 * of the chain, so a CA that signs for others cannot stand in for the
 * registry. Plain http is for loopback, or for a user who says --insecure.
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { ScopeError } from "../core/errors.js";
import { isIpv4, isIpv6 } from "../core/ip.js";

export interface TlsTrust {
  /** PEM text of the CA (or CAs) that may sign the registry's certificate; absent: the system's. */
  ca?: string;
  /** "sha256/BASE64" of the certificate's SubjectPublicKeyInfo. */
  pin?: string;
}

export const PIN_RE = /^sha256\/[A-Za-z0-9+/]{43}=$/;

/** Reads ca_file; a missing or non-PEM file is a config error with its name. */
export function loadTrust(o: { caFile?: string | undefined; pin?: string | undefined }): TlsTrust {
  const trust: TlsTrust = {};
  if (o.caFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.caFile, "utf8");
    } catch (e) {
      throw new ScopeError(
        "config",
        `cannot read CA file ${o.caFile}: ${(e as { code?: string }).code ?? e}`,
      );
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----"))
      throw new ScopeError("config", `${o.caFile}: not a PEM certificate`);
    trust.ca = text;
  }
  if (o.pin !== undefined) {
    if (!PIN_RE.test(o.pin)) throw new ScopeError("config", "pin: expected sha256/ and 44 base64 characters");
    trust.pin = o.pin;
  }
  return trust;
}

/** The trust an edge config names ([registry] ca_file, pin). */
export const trustOf = (c: {
  registry: { ca_file?: string | undefined; pin?: string | undefined };
}): TlsTrust => loadTrust({ caFile: c.registry.ca_file, pin: c.registry.pin });

/** The pin of a certificate: SHA-256 over its DER SubjectPublicKeyInfo (cert.pubkey is only the raw key). */
export const pinOf = (cert: Pick<PeerCertificate, "raw">): string => {
  const spki = new X509Certificate(cert.raw).publicKey.export({ type: "spki", format: "der" });
  return `sha256/${createHash("sha256").update(spki).digest("base64")}`;
};

/** Options for https.request: the CA, and the pin checked after the usual host name check. */
export function tlsRequestOptions(trust: TlsTrust | undefined) {
  if (!trust) return {};
  return {
    ...(trust.ca !== undefined ? { ca: trust.ca } : {}),
    ...(trust.pin !== undefined
      ? {
          checkServerIdentity: (host: string, cert: PeerCertificate): Error | undefined => {
            const err = checkServerIdentity(host, cert);
            if (err) return err;
            if (pinOf(cert) === trust.pin) return undefined;
            return Object.assign(new Error("certificate public key does not match the pin"), {
              code: "ERR_SCOPE_PIN_MISMATCH",
            });
          },
        }
      : {}),
  };
}

/** Node's codes for a certificate the client would not trust, with what to do about each. */
const TRUST_CODES: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: "signed by a CA this host does not trust",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "signed by a CA this host does not trust",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "signed by a CA this host does not trust",
  UNABLE_TO_GET_ISSUER_CERT: "signed by a CA this host does not trust",
  CERT_HAS_EXPIRED: "expired",
  CERT_NOT_YET_VALID: "not valid yet",
  ERR_TLS_CERT_ALTNAME_INVALID: "issued for another host name",
  ERR_SCOPE_PIN_MISMATCH: "not the pinned key",
};

/** One line for a TLS failure the user can fix, or undefined for any other error. */
export function tlsTrustProblem(url: string, code: string | undefined): string | undefined {
  const what = code === undefined ? undefined : TRUST_CODES[code];
  if (!what) return undefined;
  const fix =
    code === "ERR_SCOPE_PIN_MISMATCH"
      ? "check the pin (pin in NET.conf) against the registry's certificate"
      : "give the CA that signed it with --ca-file (ca_file in NET.conf)";
  return `registry ${url}: TLS certificate ${what} (${code}); ${fix}`;
}

/** localhost, 127.0.0.0/8 and ::1: a plain http request to these never leaves the host. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIpv4(h)) return h.startsWith("127.");
  return isIpv6(h) && (h === "::1" || /^(0{0,4}:){7}0{0,3}1$/.test(h));
}

/** https://, or http:// to loopback, or http:// with --insecure; anything else is a usage error. */
export function requireSecureUrl(url: string, what: string, insecure: boolean): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ScopeError("usage", `${what}: not a URL`);
  }
  if (u.protocol === "https:") return;
  if (u.protocol !== "http:") throw new ScopeError("usage", `${what}: must be https://HOST[:PORT]`);
  if (insecure || isLoopbackHost(u.hostname)) return;
  throw new ScopeError(
    "usage",
    `${what}: https:// is required (plain http only to a loopback address, or with --insecure)`,
  );
}
