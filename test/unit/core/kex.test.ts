import { expect } from "chai";
import { createHash, hkdfSync } from "node:crypto";
import { step } from "../../../src/core/engine/index.js";
import { KEX_REQUEST_WAIT_MS, KEX_SWITCH_MS, WG_REKEY_AFTER_MS } from "../../../src/core/engine/kex.js";
import { openKex, sealKex } from "../../../src/core/engine/kex-wire.js";
import type { Event } from "../../../src/core/protocol.js";
import { PERSISTENT_KEEPALIVE_S } from "../../../src/core/timers.js";
import {
  answerOffer,
  derive,
  finishOffer,
  makeOffer,
  x448Pair,
  x448Shared,
  type PairKeys,
} from "../../../src/crypto/kex.js";
import { signMessage } from "../../../src/crypto/keys.js";
import { identityKeyer } from "../../../src/core/probe/mac.js";
import {
  appliedPsk,
  deliver,
  join,
  kexEvents,
  kexOf,
  ordered,
  seededBytes,
  settle,
  side,
  type Side,
} from "../helpers/kex-pair.js";

const T0 = 1_700_000_000_000;
const INTERVAL = 120_000;

const pair = () => {
  const [d, e] = ordered(side("a", 1, INTERVAL), side("b", 2, INTERVAL));
  join(d, e, T0);
  return { d, e };
};

const stateOf = (s: Side, o: Side): string => {
  const k = kexOf(s, o);
  return JSON.stringify({
    psk: k.psk,
    epoch: k.epoch,
    last: k.lastEpoch,
    answered: !!k.answered,
    offer: !!k.offer,
  });
};

/** One byte changed in the base64 payload at byte offset i (a changed field). */
function flipPayloadByte(ev: Event, i: number): Event {
  if (ev.type !== "cc.ltgc.scope:kex") throw new Error("not kex");
  const raw = Buffer.from(ev.body.payload, "base64");
  raw[i] = (raw[i] ?? 0) ^ 1;
  return { ...ev, body: { ...ev.body, payload: raw.toString("base64") } };
}

type KexEvent = Extract<Event, { type: "cc.ltgc.scope:kex" }>;
const withBody = (ev: Event, body: KexEvent["body"]): Event => ({ ...(ev as KexEvent), body });

const kexBody = (ev: Event) => {
  if (ev.type !== "cc.ltgc.scope:kex") throw new Error("not kex");
  return ev.body;
};

const posts = (fx: { type: string }[]) => fx.filter((e) => e.type === "postMessage").length;

describe("psk rotation: crypto", () => {
  const keys: PairKeys = {
    decapsulatorWg: new Uint8Array(32).fill(2),
    encapsulatorWg: new Uint8Array(32).fill(1),
  };

  it("both sides of the hybrid exchange derive the same PSK and confirm tag", () => {
    const o = makeOffer(seededBytes(7));
    const a = answerOffer(seededBytes(8), keys, 42, o.x448Public, o.mlkemPublic);
    const d = finishOffer(o, keys, 42, a.x448Public, a.ciphertext);
    expect(Buffer.from(d.psk).toString("hex")).to.equal(Buffer.from(a.derived.psk).toString("hex"));
    expect(Buffer.from(d.confirm).toString("hex")).to.equal(Buffer.from(a.derived.confirm).toString("hex"));
    expect(d.psk).to.have.length(32);
  });

  it("known answer: the derivation with fixed keys and randomness", () => {
    const o = makeOffer(seededBytes(7));
    const a = answerOffer(seededBytes(8), keys, 42, o.x448Public, o.mlkemPublic);
    expect(Buffer.from(a.derived.psk).toString("base64")).to.equal(
      "BGTDmtnb2yjyTC8cPcvg0R3RgFC4N6Km3f6u8XPz1uY=",
    );
    // The combiner alone, with fixed inputs: pins HKDF, the framing and the transcript.
    const fixed = derive(new Uint8Array(32).fill(3), new Uint8Array(56).fill(4), keys, {
      epoch: 1,
      offerX448: new Uint8Array(56).fill(5),
      offerMlkem: new Uint8Array(1184).fill(6),
      answerX448: new Uint8Array(56).fill(7),
      ciphertext: new Uint8Array(1088).fill(8),
    });
    expect(Buffer.from(fixed.psk).toString("hex")).to.equal(
      "0cb35487e98c9a9797827795b79d6c96f5ca460c0b972f4904f878c541c231d9",
    );
    // The same value from OpenSSL's HKDF and SHA-256, framing written out here: an independent check.
    const frame = (parts: Buffer[]) =>
      Buffer.concat(
        parts.flatMap((p) => [Buffer.from(BigInt(p.length).toString(16).padStart(16, "0"), "hex"), p]),
      );
    const info = Buffer.from("cc.ltgc.scope psk v1");
    const fill = (n: number, v: number) => Buffer.alloc(n, v);
    const salt = createHash("sha256")
      .update(
        frame([
          info,
          Buffer.from("0000000000000001", "hex"),
          fill(32, 2),
          fill(32, 1),
          fill(56, 5),
          fill(1184, 6),
          fill(56, 7),
          fill(1088, 8),
        ]),
      )
      .digest();
    const okm = Buffer.from(hkdfSync("sha256", frame([fill(32, 3), fill(56, 4)]), salt, info, 64));
    expect(okm.subarray(0, 32).toString("hex")).to.equal(Buffer.from(fixed.psk).toString("hex"));
  });

  it("X448 on OpenSSL: RFC 7748 §6.2's key pair, and DH agrees both ways", () => {
    const alice = x448Pair(
      Buffer.from(
        "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b",
        "hex",
      ),
    );
    expect(Buffer.from(alice.public).toString("hex")).to.equal(
      "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0",
    );
    const [p, q] = [x448Pair(seededBytes(1)(56)), x448Pair(seededBytes(2)(56))];
    expect(
      Buffer.from(x448Shared(p.key, q.public)).equals(Buffer.from(x448Shared(q.key, p.public))),
    ).to.equal(true);
  });
});

describe("psk rotation: kex slice", () => {
  it("scope psk rotate on both sides: E waits for D's offer rather than asking, one exchange", () => {
    const { d, e } = pair();
    settle(d, e, T0);
    const t = T0 + 5_000;
    const stages = (evs: Event[]) => evs.map((ev) => kexBody(ev).stage);
    e.fx.push(...step(e.st, { type: "kexRotate" }, t).effects);
    expect(stages(kexEvents(e)), "E asked at once").to.deep.equal([]);
    d.fx.push(...step(d.st, { type: "kexRotate" }, t).effects);
    const carried = settle(d, e, t + 100);
    expect(stages(carried)).to.deep.equal(["offer", "answer", "confirm"]);
    e.fx.push(...step(e.st, { type: "timer", name: "tick" }, t + KEX_REQUEST_WAIT_MS).effects);
    expect(stages(kexEvents(e)), "E asked after D's offer").to.deep.equal([]);
  });

  it("scope psk rotate on E alone: it asks D once the wait for an offer is over", () => {
    const { d, e } = pair();
    settle(d, e, T0);
    const t = T0 + 5_000;
    const stages = () => kexEvents(e).map((ev) => kexBody(ev).stage);
    e.fx.push(...step(e.st, { type: "kexRotate" }, t).effects);
    e.fx.push(...step(e.st, { type: "timer", name: "tick" }, t + KEX_REQUEST_WAIT_MS - 1).effects);
    expect(stages()).to.deep.equal([]);
    e.fx.push(...step(e.st, { type: "timer", name: "tick" }, t + KEX_REQUEST_WAIT_MS).effects);
    expect(stages()).to.deep.equal(["request"]);
  });

  it("both sides configure the same PSK; the next interval rotates to a new one with a higher epoch", () => {
    const { d, e } = pair();
    settle(d, e, T0);
    const [kd, ke] = [kexOf(d, e), kexOf(e, d)];
    expect(kd.psk).to.be.a("string");
    expect(kd.psk).to.equal(ke.psk);
    expect(kd.epoch).to.equal(ke.epoch).and.to.be.greaterThan(0);
    expect(appliedPsk(d, e)).to.equal(kd.psk);
    expect(appliedPsk(e, d)).to.equal(kd.psk);
    const [first, epoch] = [kd.psk, kd.epoch];
    d.fx.push(...step(d.st, { type: "timer", name: "tick" }, T0 + INTERVAL).effects);
    settle(d, e, T0 + INTERVAL);
    expect(kexOf(d, e).psk).to.equal(kexOf(e, d).psk).and.not.equal(first);
    expect(kexOf(e, d).epoch).to.be.greaterThan(epoch);
    expect(kexOf(e, d).prev?.psk).to.equal(first);
  });

  it("a changed byte in any field, a wrong signer, another recipient or a changed epoch/stage is refused", () => {
    const { d, e } = pair();
    kexEvents(e); // E's request: not needed, D offers by itself
    const [offer] = kexEvents(d);
    if (!offer) throw new Error("no offer");
    const before = stateOf(e, d);
    const body = kexBody(offer);
    const third = side("c", 3, INTERVAL);
    const forged: Event[] = [
      flipPayloadByte(offer, 0), // nonce
      flipPayloadByte(offer, 16), // X448 key
      flipPayloadByte(offer, 16 + 56 + 100), // ML-KEM key
      withBody(offer, { ...body, epoch: body.epoch + 1 }),
      withBody(offer, { ...body, stage: "answer" }),
      withBody(offer, { ...body, signature: signMessage(third.identity, "x") }),
      // Signed by a third party (a valid signature, of the wrong signer) for the same route.
      withBody(
        offer,
        sealKex(
          identityKeyer(third.identity),
          { network: "lab", from: d.record.id, to: e.record.id },
          body.epoch,
          "offer",
          [Buffer.from(body.payload, "base64")],
        ),
      ),
      { ...offer, from: third.record.id },
      { ...offer, to: third.record.id },
    ];
    for (const ev of forged) {
      const fx = deliver(e, ev, T0);
      expect(posts(fx), JSON.stringify(ev).slice(0, 80)).to.equal(0);
      expect(stateOf(e, d)).to.equal(before);
    }
    // The untouched one still works: the refusals were the guards, not a broken offer.
    expect(posts(deliver(e, offer, T0))).to.equal(1);
    expect(kexOf(e, d).psk).to.be.a("string");
  });

  it("a tampered answer or confirm is refused and changes nothing", () => {
    const { d, e } = pair();
    kexEvents(e);
    const [offer] = kexEvents(d);
    deliver(e, offer!, T0);
    const [answer] = kexEvents(e);
    const before = stateOf(d, e);
    for (const i of [0, 20, 16 + 56 + 500]) {
      expect(posts(deliver(d, flipPayloadByte(answer!, i), T0))).to.equal(0);
      expect(stateOf(d, e)).to.equal(before);
    }
    deliver(d, answer!, T0);
    const [confirm] = kexEvents(d);
    const eBefore = stateOf(e, d);
    deliver(e, flipPayloadByte(confirm!, 20), T0);
    expect(stateOf(e, d)).to.equal(eBefore);
    deliver(e, confirm!, T0);
    expect(kexOf(e, d).answered).to.equal(undefined);
  });

  it("replays and old epochs are refused: offer, answer, confirm, request", () => {
    const { d, e } = pair();
    const carried = settle(d, e, T0);
    const psk = kexOf(d, e).psk;
    const [eBefore, dBefore] = [stateOf(e, d), stateOf(d, e)];
    for (const ev of carried) {
      const to = ev.to === d.record.id ? d : e;
      const fx = deliver(to, ev, T0 + 1_000);
      expect(posts(fx), `replayed ${kexBody(ev).stage}`).to.equal(0);
    }
    expect([stateOf(e, d), stateOf(d, e)]).to.deep.equal([eBefore, dBefore]);
    // While a newer rotation is under way, the older answer and confirm again: the nonce and epoch must match the outstanding one.
    d.fx.push(...step(d.st, { type: "kexRotate" }, T0 + 2_000).effects);
    const [offer2] = kexEvents(d);
    deliver(e, offer2!, T0 + 2_000);
    const [answer2] = kexEvents(e);
    const stage = (s: string) => carried.find((ev) => kexBody(ev).stage === s)!;
    expect(posts(deliver(d, stage("answer"), T0 + 2_000)), "old answer taken").to.equal(0);
    expect(kexOf(d, e).offer?.epoch).to.equal(kexBody(offer2!).epoch);
    deliver(e, stage("confirm"), T0 + 2_000);
    expect(kexOf(e, d).answered?.epoch, "old confirm taken").to.equal(kexBody(offer2!).epoch);
    deliver(d, answer2!, T0 + 2_000);
    settle(d, e, T0 + 2_000);
    expect(kexOf(e, d).answered).to.equal(undefined);
    // And the older offer once more (an old epoch).
    expect(posts(deliver(e, stage("offer"), T0 + 3_000))).to.equal(0);
    expect(kexOf(e, d).psk).to.equal(kexOf(d, e).psk).and.not.equal(psk);
  });

  it("the relayed messages are enough to derive nothing: no secret in them, public values give another key", () => {
    const { d, e } = pair();
    const carried = settle(d, e, T0);
    const psk = Buffer.from(kexOf(d, e).psk!, "base64");
    const payloads = carried.map((ev) => Buffer.from(kexBody(ev).payload, "base64"));
    for (const p of payloads)
      expect(p.includes(psk.subarray(0, 8)), "PSK bytes in a relayed message").to.equal(false);
    // Everything an observer has: the offer's and answer's public values. Try the derivation with them.
    const offer = openKex(
      d.identity.publicKey,
      { network: "lab", from: d.record.id, to: e.record.id },
      kexBody(carried.find((ev) => kexBody(ev).stage === "offer")!),
    );
    const answer = openKex(
      e.identity.publicKey,
      { network: "lab", from: e.record.id, to: d.record.id },
      kexBody(carried.find((ev) => kexBody(ev).stage === "answer")!),
    );
    if (!offer || !answer) throw new Error("messages do not open");
    const keys: PairKeys = {
      decapsulatorWg: Buffer.from(d.wgPublic, "base64"),
      encapsulatorWg: Buffer.from(e.wgPublic, "base64"),
    };
    const x = {
      epoch: kexBody(carried.find((ev) => kexBody(ev).stage === "offer")!).epoch,
      offerX448: offer.first,
      offerMlkem: offer.second,
      answerX448: answer.first,
      ciphertext: answer.second,
    };
    const guesses = [
      derive(new Uint8Array(32), new Uint8Array(56), keys, x),
      derive(
        answer.second.subarray(0, 32),
        x448Shared(x448Pair(new Uint8Array(56).fill(1)).key, offer.first),
        keys,
        x,
      ),
      derive(offer.second.subarray(0, 32), answer.first, keys, x),
    ];
    for (const g of guesses) expect(Buffer.from(g.psk).equals(psk)).to.equal(false);
  });

  it("E goes back to the previous PSK when no confirm comes within 15 s; D never installed it", () => {
    const { d, e } = pair();
    settle(d, e, T0);
    const good = kexOf(e, d).psk;
    d.fx.push(...step(d.st, { type: "kexRotate" }, T0 + 1_000).effects);
    const [offer] = kexEvents(d);
    deliver(e, offer!, T0 + 1_000);
    kexEvents(e); // the answer is lost
    expect(kexOf(e, d).psk).to.not.equal(good);
    step(e.st, { type: "timer", name: "tick" }, T0 + 1_000 + KEX_SWITCH_MS - 1);
    expect(kexOf(e, d).psk).to.not.equal(good);
    const fx = step(e.st, { type: "timer", name: "tick" }, T0 + 1_000 + KEX_SWITCH_MS).effects;
    e.fx.push(...fx);
    expect(kexOf(e, d).psk).to.equal(good).and.equal(kexOf(d, e).psk);
    expect(appliedPsk(e, d)).to.equal(good);
  });

  it("both sides go back when no handshake follows a switch by the time WireGuard re-keys + 15 s", () => {
    const { d, e } = pair();
    const hs = T0 - 10_000;
    for (const s of [d, e]) {
      const other = s === d ? e : d;
      step(
        s.st,
        {
          type: "stats",
          stats: [{ publicKey: other.wgPublic, lastHandshakeMs: hs, rxBytes: 1, txBytes: 1 }],
        },
        T0,
      );
    }
    settle(d, e, T0);
    const first = kexOf(d, e).psk;
    // A handshake under the first PSK proves it.
    for (const s of [d, e]) {
      const other = s === d ? e : d;
      step(
        s.st,
        {
          type: "stats",
          stats: [{ publicKey: other.wgPublic, lastHandshakeMs: T0 + 500, rxBytes: 2, txBytes: 2 }],
        },
        T0 + 1_000,
      );
    }
    expect(kexOf(d, e).proven && kexOf(e, d).proven).to.equal(true);
    d.fx.push(...step(d.st, { type: "kexRotate" }, T0 + 2_000).effects);
    settle(d, e, T0 + 2_000);
    const second = kexOf(d, e).psk;
    expect(second).to.not.equal(first);
    const due = T0 + 500 + WG_REKEY_AFTER_MS + PERSISTENT_KEEPALIVE_S * 1000 + KEX_SWITCH_MS;
    for (const s of [d, e]) step(s.st, { type: "timer", name: "tick" }, due - 1);
    expect(kexOf(d, e).psk).to.equal(second);
    for (const s of [d, e]) step(s.st, { type: "timer", name: "tick" }, due);
    expect(kexOf(d, e).psk).to.equal(first);
    expect(kexOf(e, d).psk).to.equal(first);
  });

  it("a peer that does not answer leaves D's PSK as it was", () => {
    const { d, e } = pair();
    settle(d, e, T0);
    const good = kexOf(d, e).psk;
    for (let t = T0 + INTERVAL; t <= T0 + 5 * INTERVAL; t += INTERVAL) {
      step(d.st, { type: "timer", name: "tick" }, t);
      expect(kexOf(d, e).psk).to.equal(good);
    }
  });

  it("E, restarted, asks for a rotation and gets one", () => {
    const { d, e } = pair();
    settle(d, e, T0);
    const e2 = side(e.name, e.name === "a" ? 1 : 2, INTERVAL);
    e2.record = e.record;
    join(d, e2, T0 + 10_000); // d re-learns nothing new; e2 starts empty
    kexEvents(d);
    settle(d, e2, T0 + 10_000);
    expect(kexOf(e2, d).psk).to.be.a("string").and.equal(kexOf(d, e2).psk);
  });
});
