import { expect } from "chai";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { EdgeConfig, RegistryConfig } from "../../src/config/schema.js";

/** Every key of every config schema must be documented, so the docs cannot fall behind the code. */
function keys(schema: z.ZodType): [string, string][] {
  const shape = (
    z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
      properties: Record<string, { properties?: object }>;
    }
  ).properties;
  return Object.entries(shape).flatMap(([section, s]) =>
    Object.keys(s.properties ?? {}).map((k): [string, string] => [section, k]),
  );
}

describe("docs/configuration.md", () => {
  const doc = readFileSync(new URL("../../../docs/configuration.md", import.meta.url), "utf8");
  for (const [name, schema] of [
    ["registry.conf", RegistryConfig],
    ["NET.conf", EdgeConfig],
  ] as const) {
    it(`documents every key of ${name}`, () => {
      const missing = keys(schema).filter(
        ([section, key]) => !new RegExp(`\\| ${section} \\| \`${key}\` \\|`).test(doc),
      );
      expect(missing).to.deep.equal([]);
      expect(keys(schema).length).to.be.greaterThan(5);
    });
  }
});
