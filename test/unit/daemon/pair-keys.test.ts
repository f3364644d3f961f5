import { expect } from "chai";
import type { EngineIdentity } from "../../../src/core/engine/types.js";
import { identityKeyer } from "../../../src/core/probe/mac.js";
import { generateIdentity } from "../../../src/crypto/keys.js";
import { keyerAhead } from "../../../src/daemon/pair-keys.js";

/** A keyer that counts the pair keys it makes. */
function counted(): { keyer: EngineIdentity; made: string[] } {
  const inner = identityKeyer(generateIdentity());
  const made: string[] = [];
  return {
    made,
    keyer: {
      publicKey: inner.publicKey,
      sign: (m) => inner.sign(m),
      pairKey: (theirs) => (made.push(theirs), inner.pairKey(theirs)),
    },
  };
}

/** A scheduler run by hand: each turn runs what was scheduled before it. */
function byHand(): { later: (fn: () => void) => void; turns: (n: number) => void } {
  let queue: (() => void)[] = [];
  return {
    later: (fn) => void queue.push(fn),
    turns(n) {
      for (let i = 0; i < n; i++) {
        const now = queue;
        queue = [];
        now.forEach((fn) => fn());
      }
    },
  };
}

describe("daemon: pair keys made ahead", () => {
  const peers = [generateIdentity(), generateIdentity(), generateIdentity()].map((i) => i.publicKey);

  it("prepare makes them one per event-loop turn; the engine's asks then make none and get the same keys", () => {
    const { keyer, made } = counted();
    const ahead = keyerAhead(keyer);
    const s = byHand();
    ahead.prepare([...peers, keyer.publicKey], s.later);
    expect(made).to.have.length(1); // the rest wait for later turns
    s.turns(1);
    expect(made).to.have.length(2);
    s.turns(5);
    expect(made).to.deep.equal(peers); // never our own key
    for (const p of peers) expect(ahead.pairKey(p)).to.deep.equal(keyer.pairKey(p));
    expect(made).to.have.length(peers.length * 2); // the three comparisons above, nothing from ahead
  });

  it("a key is handed out once: asked again (the peer came back), it is made anew", () => {
    const { keyer, made } = counted();
    const ahead = keyerAhead(keyer);
    ahead.prepare(peers.slice(0, 1), byHand().later);
    const first = ahead.pairKey(peers[0] ?? "");
    expect(made).to.have.length(1);
    expect(ahead.pairKey(peers[0] ?? "")).to.deep.equal(first);
    expect(made).to.have.length(2);
  });

  it("a malformed key is skipped ahead and still throws when the engine asks", () => {
    const ahead = keyerAhead(identityKeyer(generateIdentity()));
    const s = byHand();
    ahead.prepare(["not a key"], s.later);
    s.turns(2);
    expect(() => ahead.pairKey("not a key")).to.throw();
  });
});
