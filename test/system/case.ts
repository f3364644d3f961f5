// The contract of a system-test case: test/system/cases/NAME.ts default-exports
// a SystemCase. run.ts boots one VM per guest spec (two make a pair on a
// private link), fails the case on any non-zero guest exit, then calls check().
import { generateKeyPairSync } from "node:crypto";
import { type GuestSpec } from "./guest.js";
import { type VMResult } from "./vm.js";

export interface SystemCase {
  name: string;
  description: string;
  /** Called once per run, so a case can mint fresh keys. One spec = one VM, two = a pair. */
  guests(): GuestSpec[];
  /** Host-side assertions on what the guests printed; throw to fail. Runs only if all guests exited 0. */
  check(results: VMResult[]): void;
  /** Per-VM limit, sized for TCG; boot alone is about a minute there. Default 300 s. */
  timeoutMs?: number;
  /** How many times each guest reboots itself (`systemctl reboot`); default 0, and QEMU runs with -no-reboot. */
  reboots?: number;
}

/**
 * A case that drives the host itself (package builds, systemd-nspawn
 * containers) instead of booting VMs: run() throws to fail and returns the
 * lines for the report (figures such as sizes and scores). The VM image is
 * built only when a selected case needs VMs.
 */
export interface HostCase {
  name: string;
  description: string;
  /** dir: this case's scratch directory under the run dir. */
  run(dir: string): Promise<string[]>;
}

export type AnyCase = SystemCase | HostCase;

export const isHostCase = (c: AnyCase): c is HostCase => "run" in c;

/** A WireGuard key pair in wg(8)'s base64 form; X25519 raw keys are the last 32 DER bytes. */
export function wgKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const raw = (der: Buffer): string => der.subarray(der.length - 32).toString("base64");
  return {
    privateKey: raw(privateKey.export({ format: "der", type: "pkcs8" })),
    publicKey: raw(publicKey.export({ format: "der", type: "spki" })),
  };
}

/** Throw with the output attached when a guest's stdout lacks a pattern. */
export function expectOutput(result: VMResult, pattern: RegExp, what: string): void {
  if (!pattern.test(result.stdout)) {
    throw new Error(`${result.name}: ${what} (no match for ${pattern} in stdout)`);
  }
}
