/** The quota seam (src/registry/limits.ts): keys by address, 429 errors, "off". */
import { expect } from "chai";
import { DEFAULT_LIMITS, Limits, RateLimitedError, addressKey } from "../../../src/registry/limits.js";

describe("registry limits", () => {
  it("counts IPv4 by address and IPv6 by /64 (one host owns a /64)", () => {
    for (const [ip, key] of [
      ["192.0.2.7", "192.0.2.7"],
      ["::ffff:192.0.2.7", "192.0.2.7"],
      ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
      ["2001:db8:1:2::ffff", "2001:db8:1:2::/64"],
      ["::1", "::/64"],
    ] as const)
      expect(addressKey(ip), ip).to.equal(key);
  });

  it("refuses past the quota with a RateLimitedError carrying Retry-After; 0 points is no limit", async () => {
    const l = new Limits({
      ...DEFAULT_LIMITS,
      messagePerPeer: { points: 2, duration: 60 },
      joinPerPeer: { points: 0, duration: 1 },
    });
    await l.take("messagePerPeer", "a");
    await l.take("messagePerPeer", "a");
    const err = await l.take("messagePerPeer", "a").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(RateLimitedError);
    expect((err as RateLimitedError).status).to.equal(429);
    expect((err as RateLimitedError).retryAfterS).to.be.within(1, 60);
    await l.take("messagePerPeer", "b"); // another member's quota is its own
    for (let i = 0; i < 100; i++) await l.take("joinPerPeer", "a");
  });
});
