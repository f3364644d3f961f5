// The registry of the two-VM cases serves https with a test CA made on the
// host: b mints its join tokens over the remote admin API, and the admin
// token never goes over plain http past loopback (src/client/tls.ts).
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeTestCa } from "../tls-ca.js";

/** VM a's link address, where the registry listens. */
export const REGISTRY_URL = "https://192.168.77.1:8470";
/** Where a guest keeps the CA that signed the registry's certificate. */
export const REGISTRY_CA = "/etc/scope/registry-ca.pem";
/** Shell: install the CA from the case's files. */
export const installCa = `install -D -m 0644 "$SCOPE_IN/ca.pem" ${REGISTRY_CA}`;
/** Shell, on a: the CA, the registry's certificate and key, and registry.conf with the admin token. */
export const registryConfig = `install -m 0600 "$SCOPE_IN/admin.token" /etc/scope-admin.token
${installCa}
install -m 0644 "$SCOPE_IN/registry.pem" /etc/scope-registry.pem
install -m 0600 "$SCOPE_IN/registry.key" /etc/scope-registry.key
printf '[registry]\\nadmin_token_file = /etc/scope-admin.token\\ntls_cert = /etc/scope-registry.pem\\ntls_key = /etc/scope-registry.key\\n' >/etc/scope-registry.conf`;

/** The files both guests get: the remote admin token, the CA, the registry's certificate and key. */
export function registryGuestFiles(): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "scope-vm-ca-"));
  try {
    const ca = makeTestCa(dir);
    const server = ca.issue("registry", ["IP:192.168.77.1"]);
    return {
      "admin.token": `scope_admin_${randomBytes(24).toString("base64url")}\n`,
      "ca.pem": readFileSync(ca.caFile, "utf8"),
      "registry.pem": readFileSync(server.cert, "utf8"),
      "registry.key": readFileSync(server.key, "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
