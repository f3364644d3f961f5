import { expect } from "chai";
import {
  REPLY_BYTES,
  REQUEST_MIN_BYTES,
  encodeReply,
  encodeRequest,
  parseReply,
  parseRequest,
} from "../../../src/core/reflector.js";
import { generateIdentity, signMessage, verifyMessage } from "../../../src/crypto/keys.js";

describe("core/reflector codec", () => {
  const id = generateIdentity();
  const sign = (b: Uint8Array) => Buffer.from(signMessage(id, b), "base64");
  const nonce = Uint8Array.from({ length: 16 }, (_, i) => i * 7);

  it("round-trips a request, ignoring trailing bytes", () => {
    const req = encodeRequest({ nonce });
    expect(req.length).to.equal(REQUEST_MIN_BYTES);
    expect(parseRequest(req)?.nonce).to.deep.equal(nonce);
    expect(parseRequest(Buffer.concat([req, Buffer.from("future fields")]))?.nonce).to.deep.equal(nonce);
  });

  it("never answers more bytes than it was sent", () => {
    expect(REPLY_BYTES).to.be.at.most(REQUEST_MIN_BYTES);
    expect(parseRequest(encodeRequest({ nonce }).subarray(0, REQUEST_MIN_BYTES - 1))).to.equal(undefined);
  });

  it("refuses wrong magic, version and type", () => {
    for (const [i, v] of [
      [0, 0x58],
      [4, 2],
      [5, 2],
    ] as const) {
      const b = encodeRequest({ nonce });
      b[i] = v;
      expect(parseRequest(b), `byte ${i}`).to.equal(undefined);
    }
    expect(parseReply(encodeRequest({ nonce }))).to.equal(undefined);
  });

  const observed = [
    { family: 4, address: "198.51.100.7", port: 40000 },
    { family: 6, address: "2001:db8::1", port: 1 },
    { family: 6, address: "2001:db8:0:1:1:1:1:1", port: 65535 },
    { family: 6, address: "::", port: 8470 },
    { family: 6, address: "fe80::1:2", port: 9 },
  ] as const;
  for (const o of observed) {
    it(`round-trips a signed reply for ${o.address}:${o.port}`, () => {
      const reply = encodeReply(nonce, o, sign);
      expect(reply.length).to.equal(REPLY_BYTES);
      const parsed = parseReply(Buffer.concat([reply, Buffer.alloc(9, 1)]));
      expect(parsed).to.include({ family: o.family, address: o.address, port: o.port });
      expect(parsed?.nonce).to.deep.equal(nonce);
      const sig = Buffer.from(parsed!.signature).toString("base64");
      expect(verifyMessage(id.publicKey, parsed!.signed, sig)).to.equal(true);
      // A flipped port no longer verifies.
      const forged = Uint8Array.from(parsed!.signed);
      forged[forged.length - 1] ^= 1;
      expect(verifyMessage(id.publicKey, forged, sig)).to.equal(false);
    });
  }

  it("refuses a truncated reply and a bad family", () => {
    const reply = encodeReply(nonce, observed[0], sign);
    expect(parseReply(reply.subarray(0, REPLY_BYTES - 1))).to.equal(undefined);
    reply[22] = 5;
    expect(parseReply(reply)).to.equal(undefined);
  });
});
