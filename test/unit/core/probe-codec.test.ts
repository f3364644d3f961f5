import { expect } from "chai";
import { generateIdentity, peerIdOf } from "../../../src/crypto/keys.js";
import {
  acceptFresh,
  decodeProbe,
  encodeProbe,
  probeSender,
  type ProbeMessage,
} from "../../../src/core/probe/codec.js";
import { probePairKey } from "../../../src/core/probe/mac.js";

describe("probe codec", () => {
  const a = generateIdentity();
  const b = generateIdentity();
  const c = generateIdentity();
  const kab = probePairKey(a.secretKey, a.publicKey, b.publicKey);
  const kba = probePairKey(b.secretKey, b.publicKey, a.publicKey);
  const kac = probePairKey(a.secretKey, a.publicKey, c.publicKey);
  const sender = peerIdOf(a.publicKey);
  const ping: ProbeMessage = { type: "ping", sender, nonce: "0011223344556677", time: 1_700_000_000_123 };
  const pong: ProbeMessage = {
    type: "pong",
    sender,
    nonce: "8899aabbccddeeff",
    time: 1_700_000_000_456,
    echoNonce: "0011223344556677",
    observed: { address: "2001:db8::7", port: 40001 },
  };

  it("derives the same pair key in both directions, and another for another pair", () => {
    expect(Buffer.from(kab).equals(Buffer.from(kba))).to.equal(true);
    expect(Buffer.from(kab).equals(Buffer.from(kac))).to.equal(false);
  });

  const rows: {
    name: string;
    msg: ProbeMessage;
    mutate: (b: Uint8Array) => Uint8Array;
    key: Uint8Array;
    ok: boolean;
  }[] = [
    { name: "ping round trip", msg: ping, mutate: (x) => x, key: kba, ok: true },
    { name: "pong round trip (IPv6 observed)", msg: pong, mutate: (x) => x, key: kba, ok: true },
    {
      name: "pong round trip (IPv4 observed)",
      msg: { ...pong, observed: { address: "203.0.113.9", port: 1 } },
      mutate: (x) => x,
      key: kba,
      ok: true,
    },
    {
      name: "trailing bytes are ignored",
      msg: pong,
      mutate: (x) => Uint8Array.from([...x, 1, 2, 3]),
      key: kba,
      ok: true,
    },
    { name: "wrong pair key", msg: ping, mutate: (x) => x, key: kac, ok: false },
    { name: "flipped time bit", msg: ping, mutate: (x) => flip(x, 31), key: kba, ok: false },
    { name: "flipped observed port", msg: pong, mutate: (x) => flip(x, 32 + 26), key: kba, ok: false },
    { name: "flipped MAC", msg: ping, mutate: (x) => flip(x, x.length - 1), key: kba, ok: false },
    { name: "truncated", msg: pong, mutate: (x) => x.slice(0, x.length - 1), key: kba, ok: false },
    { name: "bad magic", msg: ping, mutate: (x) => flip(x, 0), key: kba, ok: false },
    { name: "empty", msg: ping, mutate: () => new Uint8Array(0), key: kba, ok: false },
  ];
  for (const r of rows) {
    it(`${r.name}: ${r.ok ? "accepted" : "rejected"}`, () => {
      const got = decodeProbe(r.mutate(encodeProbe(r.msg, kab)), r.key);
      if (r.ok) expect(got).to.deep.equal(r.msg);
      else expect(got).to.equal(undefined);
    });
  }

  it("names the claimed sender before verification", () => {
    expect(probeSender(encodeProbe(ping, kab))).to.equal(sender);
    expect(probeSender(new Uint8Array(10))).to.equal(undefined);
  });

  it("rejects stale and replayed probes", () => {
    const seen = new Map<string, number>();
    expect(acceptFresh(seen, ping, ping.time + 100, 30_000)).to.equal(true);
    expect(acceptFresh(seen, ping, ping.time + 200, 30_000), "replay").to.equal(false);
    expect(
      acceptFresh(seen, { ...ping, nonce: "1111111111111111" }, ping.time + 31_000, 30_000),
      "stale",
    ).to.equal(false);
    expect(
      acceptFresh(seen, { ...ping, nonce: "2222222222222222" }, ping.time - 31_000, 30_000),
      "future",
    ).to.equal(false);
  });
});

describe("probe codec and a fractional clock", () => {
  it("encodes a fractional time as whole ms, floored", () => {
    const [a, b] = [generateIdentity(), generateIdentity()];
    const key = probePairKey(a.secretKey, a.publicKey, b.publicKey);
    const msg: ProbeMessage = {
      type: "ping",
      sender: "00112233aabbccdd",
      nonce: "0011223344556677",
      time: 1_700_000_000_123.9,
    };
    expect(decodeProbe(encodeProbe(msg, key), key)).to.deep.equal({ ...msg, time: 1_700_000_000_123 });
  });

  // A pong's time and an upgrade's moment carry the fraction: the clock
  // offset and the switch from the hub are worth sub-millisecond precision.
  it("keeps a pong's fractional time and an upgrade's fractional moment", () => {
    const [a, b] = [generateIdentity(), generateIdentity()];
    const key = probePairKey(a.secretKey, a.publicKey, b.publicKey);
    const base = { sender: "00112233aabbccdd", nonce: "0011223344556677", time: 1_700_000_000_123.25 };
    const pong: ProbeMessage = {
      ...base,
      type: "pong",
      echoNonce: "8899aabbccddeeff",
      observed: { address: "203.0.113.9", port: 51820 },
    };
    expect(decodeProbe(encodeProbe(pong, key), key)).to.deep.equal(pong);
    const upgrade: ProbeMessage = { ...base, type: "upgrade", delayMs: 987, at: 1_700_000_001_110.625 };
    const whole = 1_700_000_000_123;
    expect(decodeProbe(encodeProbe(upgrade, key), key)).to.deep.equal({ ...upgrade, time: whole });
    const { at: _at, ...plain } = upgrade;
    expect(decodeProbe(encodeProbe(plain, key), key), "without the moment").to.deep.equal({
      ...plain,
      time: whole,
    });
  });
});

function flip(b: Uint8Array, i: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[i] = (c[i] ?? 0) ^ 1;
  return c;
}
