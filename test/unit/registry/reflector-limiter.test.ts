/**
 * The UDP reflector's per-source limiter under a spoofed-source flood
 * (issue 14): the table stays bounded, and a source that is being limited
 * is not handed a fresh bucket because the flood filled the table (the old
 * limiter forgot the whole table at 50 000 sources).
 */
import { expect } from "chai";
import { RateLimiter } from "../../../src/registry/reflector-server.js";

const MAX = 1_000;
const spoofed = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;

describe("reflector rate limiter", () => {
  it("keeps limiting a source while a spoofed flood fills the table, within its bound", () => {
    const l = new RateLimiter(20, 5, MAX);
    let t = 0;
    // The victim's address, used by a reflection attack: its burst is spent.
    let answered = 0;
    for (let i = 0; i < 100; i++) if (l.allow("192.0.2.7", t)) answered++;
    expect(answered).to.equal(20);
    // Ten times the table's size of fresh spoofed sources within 100 ms.
    let flood = 0;
    for (let i = 0; i < 10 * MAX; i++) {
      t = i / 100;
      if (l.allow(spoofed(i), t)) flood++;
    }
    expect(l.tracked).to.be.at.most(MAX + 1);
    expect(l.allow("192.0.2.7", t), "the victim got a fresh bucket").to.equal(false);
    // Past the table's capacity, fresh sources shared one bucket: MAX - 1 tracked, then 20 more.
    expect(flood).to.be.below(MAX + 20);
  });

  it("forgets idle sources (refilled buckets) to make room, so fresh legitimate ones get their own", () => {
    const l = new RateLimiter(20, 5, MAX);
    for (let i = 0; i < MAX; i++) l.allow(spoofed(i), 0);
    expect(l.tracked).to.equal(MAX);
    // 4 s later every bucket has refilled: they are dropped, the newcomer is tracked alone.
    expect(l.allow("192.0.2.8", 4_000)).to.equal(true);
    expect(l.tracked).to.equal(1);
  });
});
