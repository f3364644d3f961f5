import { expect } from "chai";
import { ScopeError } from "../../../src/core/errors.js";
import type { PostMessage } from "../../../src/core/protocol.js";
import { MAX_ATTEMPTS, MAX_IN_FLIGHT, Outbox } from "../../../src/daemon/outbox.js";
import { useFakeClock } from "../helpers/fake-clock.js";

const report = (about: string, port: number): PostMessage => ({
  type: "cc.ltgc.scope:peerReport",
  to: about,
  body: { about, wgEndpoint: { address: "198.51.100.7", port } },
});
const unreachable = (): ScopeError =>
  new ScopeError("unavailable", "no answer from registry in time", { cause: { code: "ETIMEDOUT" } });
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A registry whose answers the test gives, one request at a time. */
class FakeRegistry {
  readonly calls: { m: PostMessage; ok: () => void; fail: (e: Error) => void }[] = [];
  post = (m: PostMessage): Promise<unknown> =>
    new Promise((ok, fail) => this.calls.push({ m, ok: () => ok(1), fail }));
  portOf = (i: number): number | undefined => {
    const m = this.calls[i]?.m;
    return m?.type === "cc.ltgc.scope:peerReport" ? m.body.wgEndpoint?.port : undefined;
  };
}

describe("daemon outbox: relayed messages the registry did not take", () => {
  const h = useFakeClock();
  let reg: FakeRegistry;
  let dropped: { m: PostMessage; attempts: number }[];
  let box: Outbox;
  beforeEach(() => {
    reg = new FakeRegistry();
    dropped = [];
    box = new Outbox({
      clock: h.clock,
      post: reg.post,
      onDrop: (m, _err, attempts) => dropped.push({ m, attempts }),
    });
  });
  afterEach(() => box.close());

  it("sends a report again after a timeout, on the clock, until the registry takes it", async () => {
    box.send(report("a", 40001));
    expect(reg.calls).to.have.length(1);
    reg.calls[0]?.fail(unreachable());
    await tick();
    expect(reg.calls).to.have.length(1);
    h.clock.advance(1_000);
    expect(reg.calls).to.have.length(2);
    expect(reg.portOf(1)).to.equal(40001);
    reg.calls[1]?.fail(unreachable());
    await tick();
    h.clock.advance(1_999);
    expect(reg.calls).to.have.length(2);
    h.clock.advance(1);
    expect(reg.calls).to.have.length(3);
    reg.calls[2]?.ok();
    await tick();
    expect(box.pending).to.equal(0);
    expect(dropped).to.deep.equal([]);
  });

  it("gives up a refused message at once, and any message after MAX_ATTEMPTS", async () => {
    box.send(report("gone", 1));
    reg.calls[0]?.fail(new ScopeError("not_found", "to: no peer gone"));
    await tick();
    expect(dropped.map((d) => d.attempts)).to.deep.equal([1]);
    box.send(report("b", 2));
    for (let i = 1; i <= MAX_ATTEMPTS; i++) {
      reg.calls[i]?.fail(unreachable());
      await tick();
      h.clock.advance(60_000);
    }
    expect(reg.calls).to.have.length(1 + MAX_ATTEMPTS);
    expect(dropped.map((d) => d.attempts)).to.deep.equal([1, MAX_ATTEMPTS]);
    expect(h.clock.pending()).to.equal(0);
  });

  it("coalesces reports about one peer: the newest waiting one is sent, once", async () => {
    for (let i = 0; i < MAX_IN_FLIGHT; i++) box.send(report(`busy${i}`, i));
    box.send(report("a", 1));
    box.send(report("a", 2));
    box.send(report("a", 3));
    expect(reg.calls).to.have.length(MAX_IN_FLIGHT);
    reg.calls[0]?.ok();
    await tick();
    expect(reg.calls).to.have.length(MAX_IN_FLIGHT + 1);
    expect(reg.portOf(MAX_IN_FLIGHT)).to.equal(3);
    for (const c of reg.calls) c.ok();
    await tick();
    expect(reg.calls).to.have.length(MAX_IN_FLIGHT + 1);
  });

  it("a newer report replaces a retry that is waiting, and goes at once", async () => {
    box.send(report("a", 1));
    reg.calls[0]?.fail(unreachable());
    await tick();
    box.send(report("a", 2));
    expect(reg.calls).to.have.length(2);
    expect(reg.portOf(1)).to.equal(2);
    reg.calls[1]?.ok();
    await tick();
    h.clock.advance(60_000);
    expect(reg.calls).to.have.length(2);
  });

  it("close cancels every retry timer", async () => {
    box.send(report("a", 1));
    reg.calls[0]?.fail(unreachable());
    await tick();
    expect(h.clock.pending()).to.equal(1);
    box.close();
    expect(h.clock.pending()).to.equal(0);
  });
});
