import { expect } from "chai";
import { z } from "zod";
import { ScopeError } from "../../../src/core/errors.js";
import { toErrorResponse } from "../../../src/registry/http-errors.js";

describe("registry/http-errors mapping", () => {
  const zodError = (() => {
    const r = z
      .strictObject({ peer: z.strictObject({ listenPort: z.number().max(65535) }) })
      .safeParse({ peer: { listenPort: 70000 } });
    return r.success ? undefined : r.error;
  })();
  const rows: {
    what: string;
    err: unknown;
    status: number;
    code: string;
    message?: RegExp;
    internal?: boolean;
  }[] = [
    {
      what: "ScopeError keeps code and status",
      err: new ScopeError("token_invalid", "join token expired"),
      status: 403,
      code: "token_invalid",
      message: /^join token expired$/,
    },
    { what: "replay is 401", err: new ScopeError("replay", "x"), status: 401, code: "replay" },
    {
      what: "zod names the field",
      err: zodError,
      status: 400,
      code: "bad_request",
      message: /^peer\.listenPort: /,
    },
    { what: "URIError is a bad path", err: new URIError("URI malformed"), status: 400, code: "bad_request" },
    {
      what: "exposed 4xx from koa keeps status",
      err: Object.assign(new Error("Not Found"), { status: 404, expose: true }),
      status: 404,
      code: "not_found",
      message: /Not Found/,
    },
    {
      what: "unexposed 4xx hides the message",
      err: Object.assign(new Error("secret detail"), { status: 400 }),
      status: 400,
      code: "bad_request",
      message: /^bad request$/,
    },
    {
      what: "unknown 4xx status maps to a generic code",
      err: Object.assign(new Error("x"), { status: 431, expose: true }),
      status: 431,
      code: "bad_request",
    },
    {
      what: "anything else is a hidden 500",
      err: new TypeError("boom at /etc/secret"),
      status: 500,
      code: "internal",
      message: /request r1/,
      internal: true,
    },
    {
      what: "a 5xx status from a library is a hidden 500",
      err: Object.assign(new Error("db down"), { status: 503 }),
      status: 500,
      code: "internal",
      internal: true,
    },
    { what: "a thrown string is a hidden 500", err: "oops", status: 500, code: "internal", internal: true },
  ];
  for (const r of rows) {
    it(r.what, () => {
      const out = toErrorResponse(r.err, "r1");
      expect(out.status).to.equal(r.status);
      expect(out.body.error).to.equal(r.code);
      expect(out.internal).to.equal(r.internal ?? false);
      if (r.message) expect(out.body.message).to.match(r.message);
      if (out.internal) expect(out.body.message).not.to.match(/boom|db down|oops/);
    });
  }
});
