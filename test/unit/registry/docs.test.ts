import { expect } from "chai";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { render } from "../../../src/registry/docs.js";

describe("docs/protocol.md", () => {
  it("is up to date with the protocol schemas (regenerate: node dist/src/registry/docs.js)", () => {
    const file = fileURLToPath(new URL("../../../../docs/protocol.md", import.meta.url));
    const doc = readFileSync(file, "utf8");
    expect(render(doc) === doc, "docs/protocol.md is stale: run node dist/src/registry/docs.js").to.equal(
      true,
    );
  });
});
