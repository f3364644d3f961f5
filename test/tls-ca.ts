/**
 * A throw-away certificate authority made with openssl(1), for tests that
 * need a registry on https: the registry tier (127.0.0.1) and the system
 * cases (a VM's link address). Keys are P-256, certificates last a day.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const openssl = (dir: string, ...args: string[]) =>
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });

export interface TestCa {
  caFile: string;
  /** A server certificate for sans (e.g. "IP:127.0.0.1", "DNS:localhost"), signed by the CA. */
  issue(name: string, sans: string[]): { cert: string; key: string };
}

export function makeTestCa(dir: string): TestCa {
  const caKey = join(dir, "ca.key");
  const caFile = join(dir, "ca.pem");
  openssl(dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKey);
  openssl(
    dir,
    "req",
    "-x509",
    "-new",
    "-key",
    caKey,
    "-days",
    "2",
    "-subj",
    "/CN=Scope test CA",
    "-out",
    caFile,
  );
  const issue = (name: string, sans: string[]) => {
    const key = join(dir, `${name}.key`);
    const csr = join(dir, `${name}.csr`);
    const cert = join(dir, `${name}.pem`);
    const ext = join(dir, `${name}.ext`);
    writeFileSync(ext, `subjectAltName = ${sans.join(", ")}\nextendedKeyUsage = serverAuth\n`);
    openssl(dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key);
    openssl(dir, "req", "-new", "-key", key, "-subj", `/CN=${name}`, "-out", csr);
    openssl(
      dir,
      ...["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-days", "1"],
      ...["-extfile", ext, "-out", cert],
    );
    return { cert, key };
  };
  return { caFile, issue };
}

/** SHA-256 fingerprint of a PEM certificate, as node's getPeerCertificate().fingerprint256 spells it. */
export const fingerprintOf = (pemFile: string): string =>
  execFileSync("openssl", ["x509", "-in", pemFile, "-noout", "-fingerprint", "-sha256"], { encoding: "utf8" })
    .trim()
    .split("=")[1] ?? "";
