import { expect } from "chai";
import { step } from "../../../src/core/engine/index.js";
import { KEX_SHARE_MS } from "../../../src/core/engine/kex.js";
import type { Event } from "../../../src/core/protocol.js";
import { deliver, joinMesh, kexEvents, kexOf, side, type Side } from "../helpers/kex-pair.js";

// A round's ephemerals are shared among peers, never reused for one peer
// (engine/kex.ts KEX_SHARE_MS, docs/security.md "one round, one key pair").

const T0 = 1_700_000_000_000;
const INTERVAL = 120_000;

/** Three sides by WireGuard key, highest first: hi decapsulates for both, lo encapsulates for both. */
function trio(): [Side, Side, Side] {
  const sides = [side("a", 1, INTERVAL), side("b", 2, INTERVAL), side("c", 3, INTERVAL)];
  sides.sort((x, y) => Buffer.compare(Buffer.from(y.wgPublic, "base64"), Buffer.from(x.wgPublic, "base64")));
  joinMesh(sides, T0);
  return sides as [Side, Side, Side];
}

/** Carries kex messages among the sides until none is left; returns every event carried. */
function settleMesh(sides: readonly Side[], now: number): Event[] {
  const byId = new Map(sides.map((s) => [s.record.id, s]));
  const carried: Event[] = [];
  for (let round = 0; round < 10; round++) {
    const out = sides.flatMap((s) => kexEvents(s));
    if (out.length === 0) break;
    for (const ev of out) {
      const to = byId.get(ev.to ?? "");
      if (to) deliver(to, ev, now);
    }
    carried.push(...out);
  }
  return carried;
}

type Stage = "offer" | "answer";

/** The ephemeral public keys of a carried offer or answer (its payload after the nonce), hex. */
function keysOf(carried: Event[], stage: Stage, from: Side, to: Side): string {
  const ev = carried.find(
    (e) =>
      e.type === "cc.ltgc.scope:kex" &&
      e.body.stage === stage &&
      e.from === from.record.id &&
      e.to === to.record.id,
  );
  if (ev?.type !== "cc.ltgc.scope:kex") throw new Error(`no ${stage} from ${from.name} to ${to.name}`);
  const payload = Buffer.from(ev.body.payload, "base64").subarray(16);
  // An answer's X448 key only: its ciphertext is fresh per encapsulation in any case.
  return (stage === "answer" ? payload.subarray(0, 56) : payload).toString("hex");
}

function rotate(s: Side, now: number, peer?: Side): void {
  const input = peer ? { type: "kexRotate" as const, peer: peer.record.id } : { type: "kexRotate" as const };
  s.fx.push(...step(s.st, input, now).effects);
}

describe("psk rotation: one round, one key pair", () => {
  it("a round's offers (D) and answers (E) share their ephemerals; every pair still gets its own PSK", () => {
    const [hi, mid, lo] = trio();
    const carried = settleMesh([hi, mid, lo], T0);
    expect(keysOf(carried, "offer", hi, mid)).to.equal(keysOf(carried, "offer", hi, lo));
    expect(keysOf(carried, "answer", lo, hi)).to.equal(keysOf(carried, "answer", lo, mid));
    const psks = [kexOf(hi, mid), kexOf(hi, lo), kexOf(mid, lo)].map((k) => k.psk);
    expect([kexOf(mid, hi), kexOf(lo, hi), kexOf(lo, mid)].map((k) => k.psk)).to.deep.equal(psks);
    expect(new Set(psks).size).to.equal(3);
    expect(psks.every((p) => typeof p === "string")).to.equal(true);
  });

  it("a peer never meets the same ephemerals twice: a rotation inside the window makes new ones", () => {
    const [hi, mid, lo] = trio();
    const first = settleMesh([hi, mid, lo], T0);
    const t = T0 + 2_000; // well inside KEX_SHARE_MS
    rotate(hi, t);
    const second = settleMesh([hi, mid, lo], t);
    expect(keysOf(second, "offer", hi, mid)).to.not.equal(keysOf(first, "offer", hi, mid));
    expect(keysOf(second, "offer", hi, mid)).to.equal(keysOf(second, "offer", hi, lo));
    expect(keysOf(second, "answer", lo, hi)).to.not.equal(keysOf(first, "answer", lo, hi));
    expect(kexOf(hi, lo).psk).to.equal(kexOf(lo, hi).psk);
  });

  it("a key pair serves one round only: an offer after the window gets new ones", () => {
    // The join's round is over; hi rotates mid alone, then lo dt later.
    const loMeetsMidsKeys = (dt: number): boolean => {
      const [hi, mid, lo] = trio();
      settleMesh([hi, mid, lo], T0);
      const t1 = T0 + 20_000;
      rotate(hi, t1, mid);
      const toMid = settleMesh([hi, mid, lo], t1);
      rotate(hi, t1 + dt, lo);
      const toLo = settleMesh([hi, mid, lo], t1 + dt);
      expect(kexOf(hi, lo).psk).to.equal(kexOf(lo, hi).psk);
      return keysOf(toLo, "offer", hi, lo) === keysOf(toMid, "offer", hi, mid);
    };
    expect(loMeetsMidsKeys(KEX_SHARE_MS - 1)).to.equal(true);
    expect(loMeetsMidsKeys(KEX_SHARE_MS)).to.equal(false);
  });

  it("a round's secrets are forgotten at the first kex message after the window", () => {
    const [hi, mid, lo] = trio();
    const carried = settleMesh([hi, mid, lo], T0);
    const confirm = carried.find(
      (e) => e.type === "cc.ltgc.scope:kex" && e.body.stage === "confirm" && e.to === lo.record.id,
    );
    if (!confirm) throw new Error("no confirm to lo");
    expect(lo.st.kexShared.answer).to.not.equal(undefined);
    deliver(lo, confirm, T0 + KEX_SHARE_MS - 1); // a replay: refused, and early
    expect(lo.st.kexShared.answer).to.not.equal(undefined);
    deliver(lo, confirm, T0 + KEX_SHARE_MS);
    expect(lo.st.kexShared.answer).to.equal(undefined);
  });
});
