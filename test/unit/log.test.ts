import { expect } from "chai";
import { createLogger, registerSecret, setLogLevel } from "../../src/log.js";

/** Runs fn while collecting what the logger writes (stderr). */
function capture(fn: () => void): string {
  const chunks: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
  }
  return chunks.join("");
}

describe("log", () => {
  afterEach(() => setLogLevel("info"));

  it("prints component, message and fields", () => {
    const out = capture(() =>
      createLogger("registry").child("sse").info("subscriber added", { network: "corp", n: 3 }),
    );
    expect(out).to.match(/info {2}registry\/sse: subscriber added network=corp n=3\n$/);
  });

  it("redacts secret-named fields whatever their value", () => {
    const out = capture(() =>
      createLogger("t").warn("x", {
        token: "tok_abc",
        privateKey: "AAAA",
        presharedKey: "BBBB",
        publicKey: "pub",
      }),
    );
    expect(out)
      .to.include("token=[redacted]")
      .and.include("privateKey=[redacted]")
      .and.include("presharedKey=[redacted]");
    expect(out).to.not.include("tok_abc").and.not.include("AAAA").and.not.include("BBBB");
    expect(out).to.include("publicKey=pub");
  });

  it("masks registered secrets anywhere in a line", () => {
    const secret = "s3cr3t-join-token-0123456789";
    registerSecret(secret);
    const out = capture(() => createLogger("t").error(`bad token ${secret}`, { detail: `x${secret}y` }));
    expect(out).to.not.include(secret);
    expect(out.match(/\[redacted\]/g)).to.have.length(2);
  });

  it("masks a private key by value once it is loaded, whatever field or message carries it", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const { generateWgKeyPair } = await import("../../src/crypto/keys.js");
    const { loadWgKey } = await import("../../src/daemon/files.js");
    const dir = mkdtempSync("/tmp/scope-log-");
    const k = generateWgKeyPair();
    writeFileSync(`${dir}/wg.key`, k.privateKey + "\n", { mode: 0o600 });
    try {
      await loadWgKey(`${dir}/wg.key`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const out = capture(() => createLogger("t").warn(`applied ${k.privateKey}`, { change: k.privateKey }));
    expect(out).to.not.include(k.privateKey);
    expect(out).to.include(k.publicKey.length > 0 ? "[redacted]" : "");
  });

  it("honours the level", () => {
    setLogLevel("warn");
    expect(capture(() => createLogger("t").info("quiet"))).to.equal("");
    setLogLevel("debug");
    expect(capture(() => createLogger("t").debug("loud"))).to.include("loud");
  });

  it("writes priority prefixes and no timestamp under systemd", () => {
    process.env.JOURNAL_STREAM = "8:1234";
    try {
      const out = capture(() => createLogger("d").warn("w"));
      expect(out).to.equal("<4>d: w\n");
    } finally {
      delete process.env.JOURNAL_STREAM;
    }
  });
});
