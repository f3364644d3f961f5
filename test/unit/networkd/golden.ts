/**
 * Golden files live in the source tree (test/unit/networkd/golden/), not in
 * dist/. SCOPE_UPDATE_GOLDEN=1 rewrites them; review the diff like code.
 */
import { expect } from "chai";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

// dist/test/unit/networkd/golden.js → test/unit/networkd/golden/
const DIR = fileURLToPath(new URL("../../../../test/unit/networkd/golden/", import.meta.url));

export function expectGolden(name: string, actual: string): void {
  const path = DIR + name;
  if (process.env.SCOPE_UPDATE_GOLDEN === "1") writeFileSync(path, actual);
  expect(actual, `golden ${name} (SCOPE_UPDATE_GOLDEN=1 to rewrite)`).to.equal(readFileSync(path, "utf8"));
}

export const readGolden = (name: string): string => readFileSync(DIR + name, "utf8");
