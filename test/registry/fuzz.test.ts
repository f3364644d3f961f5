/**
 * Acceptance 3: randomized malformed requests against a running registry.
 * Zero 5xx, the process stays up and healthy, memory stays bounded, and
 * bodies over the limit get 413. Requests are written as raw bytes on TCP
 * (and on the admin socket, so authenticated parsing is fuzzed too), which
 * lets the generator break the HTTP framing itself.
 *
 * Seeded: set SCOPE_FUZZ_SEED to replay a failing run; the seed is printed.
 */
import { expect } from "chai";
import { connect } from "node:net";
import { MAX_BODY_BYTES } from "../../src/core/protocol.js";
import { signRequest } from "../../src/crypto/signing.js";
import { memberClient, newPeer, rssKb, startRegistryProcess, type RegistryProcess } from "./harness.js";

const COUNT = Number(process.env.SCOPE_FUZZ_COUNT ?? 10_000);
const CONCURRENCY = 24;
/** RSS growth allowed over the run (after a warm-up), in kB. */
const RSS_GROWTH_KB = 96 * 1024;

/** mulberry32: small, fast, good enough to pick fuzz cases reproducibly. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  return { next, int, pick, bytes };
}
type Rng = ReturnType<typeof prng>;

interface Case {
  kind: string;
  raw: Buffer;
  admin?: boolean;
  /** The status the case must get, when it is certain. */
  expect?: number;
}

const PATHS = [
  "/v1/networks",
  "/v1/networks/corp",
  "/v1/networks/corp/join",
  "/v1/networks/corp/peers",
  "/v1/networks/corp/peers/self",
  "/v1/networks/corp/peers/0123456789abcdef",
  "/v1/networks/corp/messages",
  "/v1/networks/corp/tokens",
  "/v1/networks/corp/events",
  "/healthz",
  "/metrics",
];
const METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "HEAD",
  "OPTIONS",
  "PROPFIND",
  "TRACE",
  "get",
  "FOO",
];
const TRICKS = [
  "..",
  "%2e%2e",
  "%00",
  "%",
  "%E0%A4%A",
  "%ff",
  "//",
  "\u00e9",
  ";",
  "?",
  "#",
  "%2F",
  "\\",
  "~",
  "*",
];

function json(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 5 : 8)) {
    case 0:
      return rng.int(3) === 0 ? -rng.int(1e9) : rng.next() * 1e21;
    case 1:
      return rng.pick([
        "",
        "corp",
        "10.88.0.0/16",
        "x".repeat(rng.int(300)),
        "\u0000",
        "scope_abc",
        "A".repeat(44),
      ]);
    case 2:
      return rng.pick([true, false, null]);
    case 3:
      return rng.int(2) ? 65536 : 0;
    case 4:
      return "🙂".repeat(rng.int(5));
    case 5:
      return Array.from({ length: rng.int(5) }, () => json(rng, depth + 1));
    default: {
      const keys = [
        "name",
        "cidr",
        "cidr6",
        "topology",
        "token",
        "peer",
        "type",
        "to",
        "body",
        "uses",
        "expiresIn",
        "__proto__",
        "constructor",
        "candidates",
        "nat",
        "identityKey",
        "listenPort",
      ];
      const o: Record<string, unknown> = {};
      // defineProperty: a plain assignment to "__proto__" would set the prototype, not a key.
      for (let i = rng.int(6); i > 0; i--) {
        Object.defineProperty(o, rng.pick(keys), {
          value: json(rng, depth + 1),
          enumerable: true,
          configurable: true,
        });
      }
      return o;
    }
  }
}

function body(rng: Rng): Buffer {
  switch (rng.int(6)) {
    case 0:
      return Buffer.from(JSON.stringify(json(rng)));
    case 1: // broken JSON
      return Buffer.from(
        JSON.stringify(json(rng)).slice(0, rng.int(40)) + rng.pick(["{", "]", ",", "'", "\\"]),
      );
    case 2: // bad UTF-8 inside a string
      return Buffer.concat([
        Buffer.from('{"name":"'),
        rng.pick([Buffer.from([0xc3, 0x28]), Buffer.from([0xff, 0xfe]), Buffer.from([0xed, 0xa0, 0x80])]),
        Buffer.from('"}'),
      ]);
    case 3:
      return rng.bytes(rng.int(200));
    case 4: // a deep nest
      return Buffer.from("[".repeat(2000 + rng.int(5000)) + "]".repeat(rng.int(100)));
    default:
      return Buffer.alloc(0);
  }
}

function request(method: string, path: string, headers: [string, string][], payload: Buffer): Buffer {
  const head = [
    `${method} ${path} HTTP/1.1`,
    "host: registry",
    "connection: close",
    ...headers.map(([k, v]) => `${k}: ${v}`),
  ];
  return Buffer.concat([Buffer.from(head.join("\r\n") + "\r\n\r\n", "latin1"), payload]);
}

const withLength = (h: [string, string][], b: Buffer): [string, string][] => [
  ...h,
  ["content-length", String(b.length)],
];

function makeCase(
  rng: Rng,
  signer: { id: string; sign: typeof signRequest; identity: Parameters<typeof signRequest>[0] },
): Case {
  const ct: [string, string] = [
    "content-type",
    rng.pick([
      "application/json",
      "application/json; charset=utf-8",
      "text/plain",
      "application/json; charset=latin1",
      "",
      "application/x-www-form-urlencoded",
    ]),
  ];
  switch (rng.int(9)) {
    case 0: {
      // bad or wrongly typed JSON on JSON routes, over TCP or the admin socket
      const b = body(rng);
      return {
        kind: "body",
        raw: request(rng.pick(["POST", "PUT"]), rng.pick(PATHS), withLength([ct], b), b),
        admin: rng.int(2) === 0,
      };
    }
    case 1: {
      // over the limit, declared
      const b = Buffer.alloc(MAX_BODY_BYTES + 1 + rng.int(4096), 0x20);
      const path = rng.pick(["/v1/networks/corp/join", "/v1/networks/corp/messages", "/v1/networks"]);
      return {
        kind: "huge",
        raw: request("POST", path, withLength([["content-type", "application/json"]], b), b),
        admin: path === "/v1/networks",
        expect: 413,
      };
    }
    case 2: {
      // over the limit, chunked (no Content-Length): counted while streaming
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      const parts: Buffer[] = [];
      for (let i = 0; i < MAX_BODY_BYTES / chunk.length + 2; i++)
        parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
      parts.push(Buffer.from("0\r\n\r\n"));
      return {
        kind: "huge-chunked",
        raw: request(
          "POST",
          "/v1/networks/corp/join",
          [
            ["content-type", "application/json"],
            ["transfer-encoding", "chunked"],
          ],
          Buffer.concat(parts),
        ),
        expect: 413,
      };
    }
    case 3: {
      // path tricks
      const segs = Array.from({ length: 1 + rng.int(6) }, () =>
        rng.int(2) ? rng.pick(TRICKS) : rng.pick(["v1", "networks", "corp", "peers", "self", "events"]),
      );
      let path = "/" + segs.join("/");
      if (rng.int(10) === 0) path = "/v1/networks/" + "a".repeat(2000 + rng.int(8000));
      return {
        kind: "path",
        raw: request(
          rng.pick(METHODS.slice(0, 4)),
          encodeURI(path).replace(/%25/g, "%"),
          [],
          Buffer.alloc(0),
        ),
        admin: rng.int(3) === 0,
      };
    }
    case 4: {
      // bad headers
      const h: [string, string][] = rng.pick([
        [["last-event-id", rng.pick(["-1", "1e9", "abc", "99999999999999999999", ""])]],
        [
          ["x-scope-peer", signer.id],
          ["x-scope-time", rng.pick(["NaN", "1e400", String(Date.now() - 3_600_000), "-5"])],
          ["x-scope-nonce", "00".repeat(16)],
          ["x-scope-signature", "A".repeat(88)],
        ],
        [["authorization", rng.pick(["Bearer", "Bearer " + "x".repeat(4000), "Basic abc", "Bearer \u00ff"])]],
        [["content-length", rng.pick(["-1", "abc", "1, 2", "99999999999999999"])]],
        [["x-big", "y".repeat(20_000)]],
        [["content-type", 'application/json; charset="utf-8"; q']],
      ]);
      return {
        kind: "headers",
        raw: request(rng.pick(["GET", "POST"]), rng.pick(PATHS), h, Buffer.alloc(0)),
      };
    }
    case 5: {
      // wrong methods
      return {
        kind: "method",
        raw: request(rng.pick(METHODS), rng.pick(PATHS), [], Buffer.alloc(0)),
        admin: rng.int(2) === 0,
      };
    }
    case 6: {
      // signed by a member, garbage body
      const b = body(rng);
      const method = rng.pick(["POST", "PUT", "DELETE"]);
      const path = rng.pick([
        "/v1/networks/corp/messages",
        "/v1/networks/corp/peers/self",
        "/v1/networks/corp/join",
      ]);
      const sig = signer.sign(
        signer.identity,
        path.endsWith("join") ? "join" : signer.id,
        { method, path, body: b },
        Date.now(),
      );
      const h = withLength([["content-type", "application/json"], ...Object.entries(sig)], b);
      // DELETE self would really leave: keep the member.
      return { kind: "signed", raw: request(method === "DELETE" ? "PATCH" : method, path, h, b) };
    }
    case 7: {
      // framing garbage
      return { kind: "garbage", raw: Buffer.concat([rng.bytes(1 + rng.int(100)), Buffer.from("\r\n\r\n")]) };
    }
    default: {
      const b = body(rng);
      return {
        kind: "query",
        raw: request(
          "GET",
          `/v1/networks/corp/events?after=${encodeURIComponent(JSON.stringify(json(rng)) ?? "")}`,
          withLength([], b),
          b,
        ),
      };
    }
  }
}

/** Sends raw bytes; resolves with the status code, or 0 when the server closed without an answer. */
function exchange(reg: RegistryProcess, c: Case): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const sock = c.admin ? connect(reg.socketPath) : connect(reg.port, "127.0.0.1");
    const chunks: Buffer[] = [];
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", () => {}); // a reset after an early 413 is fine: the answer was already read
    sock.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, text });
    });
    sock.setTimeout(10_000, () => sock.destroy());
    sock.end(c.raw);
  });
}

describe("registry: fuzz (real process)", function () {
  this.timeout(120_000);
  let reg: RegistryProcess;

  before(async () => {
    // 10 000 requests from one address and one member: quotas would make this a test of the limiter.
    reg = await startRegistryProcess({
      extraConfig: ["requests_per_address", "join_per_address", "join_per_peer", "requests_per_peer"]
        .map((k) => `${k} = off\n`)
        .join("")
        .replace(/^/, "[limits]\n"),
    });
    await reg.admin.createNetwork({ name: "corp", cidr: "10.88.0.0/16" });
  });
  after(async () => reg?.dispose());

  it(`survives ${COUNT} malformed requests: no 5xx, bounded memory, 413 over the limit`, async () => {
    const seed = Number(process.env.SCOPE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`      fuzz seed: ${seed} (SCOPE_FUZZ_SEED=${seed} to replay)`);
    const rng = prng(seed);
    const p = newPeer("fuzzer");
    const { token } = await reg.admin.createToken("corp", {});
    const self = await memberClient(reg, "corp", p.identity).join(token, p.input);
    const signer = { id: self.self.id, sign: signRequest, identity: p.identity };
    const pid = reg.child.pid!;

    const cases = Array.from({ length: COUNT }, () => makeCase(rng, signer));
    const stats = new Map<string, number>();
    const failures: string[] = [];
    let rssBefore = 0;
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const i = next++;
        if (i === 1000) rssBefore = rssKb(pid); // after warm-up: JIT, caches, pools
        const c = cases[i]!;
        const r = await exchange(reg, c);
        stats.set(`${c.kind} ${r.status}`, (stats.get(`${c.kind} ${r.status}`) ?? 0) + 1);
        if (r.status >= 500) failures.push(`#${i} ${c.kind}: ${r.status} ${r.text.slice(0, 300)}`);
        if (c.expect !== undefined && r.status !== c.expect)
          failures.push(`#${i} ${c.kind}: want ${c.expect}, got ${r.status}`);
        const head = c.raw.subarray(0, 5).toString() === "HEAD "; // answered without a body
        if (r.status >= 400 && !head && /content-type: application\/json/i.test(r.text)) {
          const json = r.text.slice(r.text.indexOf("\r\n\r\n") + 4);
          if (!/^\{"error":"[a-z_]+","message":".*"\}$/.test(json))
            failures.push(`#${i} ${c.kind}: error body ${json.slice(0, 200)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const rssAfter = rssKb(pid);
    console.log(
      `      outcomes: ${[...stats]
        .sort()
        .map(([k, n]) => `${k}=${n}`)
        .join(" ")}`,
    );
    console.log(
      `      registry RSS: ${Math.round(rssBefore / 1024)} MB -> ${Math.round(rssAfter / 1024)} MB`,
    );

    expect(failures.slice(0, 20)).to.deep.equal([]);
    expect(reg.child.exitCode).to.equal(null);
    expect((await fetch(`${reg.url}/healthz`)).status).to.equal(200);
    expect(rssAfter - rssBefore).to.be.below(RSS_GROWTH_KB);
  });
});
