import { expect } from "chai";
import type { ApplyResult, Backend, DesiredState, PeerStats } from "../../../src/core/backend.js";
import { BackendWorker, STATS_OVERDUE_MS, TRIGGER_SPACING_MS } from "../../../src/daemon/backend-worker.js";
import { sleep } from "../../../src/core/clock.js";
import { useFakeClock, type FakeClock } from "../helpers/fake-clock.js";

/** A worker on the fake clock whose hooks ignore everything. */
const quietWorker = (backend: Backend, clock: FakeClock): BackendWorker =>
  new BackendWorker(
    backend,
    { onApplied: () => undefined, onStats: () => undefined, onError: () => undefined },
    { clock },
  );

/** Runs the fake clock 1 ms at a time, letting promises settle in between, until p settles. */
async function runUntil(clock: FakeClock, p: Promise<void>): Promise<void> {
  let done = false;
  void p.finally(() => (done = true));
  await new Promise((r) => setImmediate(r));
  for (let i = 0; !done && i < 60_000; i++) {
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
  }
  await p;
}

/** A backend whose calls finish only when the test says so, recording what it was asked. */
class SlowBackend implements Backend {
  readonly name = "slow";
  readonly calls: string[] = [];
  private release: (() => void) | undefined;
  probe = async () => ({ usable: true, detail: "test" });
  async apply(d: DesiredState): Promise<ApplyResult> {
    this.calls.push(`apply ${d.peers.map((p) => `${p.publicKey}=${p.endpoint ?? "-"}`).join(",")}`);
    await new Promise<void>((r) => (this.release = r));
    return { changes: [] };
  }
  async stats(): Promise<PeerStats[]> {
    this.calls.push("stats");
    return [];
  }
  async triggerHandshake(k: string): Promise<void> {
    this.calls.push(`trigger ${k}`);
  }
  async close(): Promise<void> {}
  finish(): void {
    this.release?.();
  }
}

const state = (peers: [string, string | undefined][]): DesiredState => ({
  iface: { name: "t0", privateKey: "x", listenPort: 1, addresses: [] },
  peers: peers.map(([publicKey, endpoint]) => ({
    publicKey,
    allowedIps: [],
    ...(endpoint ? { endpoint } : {}),
  })),
});

describe("backend worker", () => {
  it("coalesces applies, keeps a pending endpoint choice, one stats read, triggers spaced after the apply", async () => {
    const b = new SlowBackend();
    const w = new BackendWorker(b, {
      onApplied: () => undefined,
      onStats: () => undefined,
      onError: () => undefined,
    });
    w.apply(state([["A", "1.1.1.1:1"]]));
    await Promise.resolve();
    // While the first apply runs: a choice for B, then a state that has no opinion on B's endpoint.
    w.apply(
      state([
        ["A", undefined],
        ["B", "2.2.2.2:2"],
      ]),
    );
    w.trigger("B");
    w.apply(
      state([
        ["A", undefined],
        ["B", undefined],
        ["C", undefined],
      ]),
    );
    w.stats();
    w.stats();
    b.finish();
    await new Promise((r) => setTimeout(r, 0));
    b.finish();
    await w.idle();
    // B was added with an endpoint: WireGuard initiated by itself, so the trigger waits its turn.
    expect(b.calls).to.deep.equal(["apply A=1.1.1.1:1", "apply A=-,B=2.2.2.2:2,C=-", "stats", "trigger B"]);
  });

  const t = useFakeClock();

  it("keeps TRIGGER_SPACING_MS between initiations toward one peer, and none for a peer already there", async () => {
    const clock = t.clock;
    const at: Record<string, number> = {};
    const calls: string[] = [];
    const backend: Backend & { triggerHandshake(k: string): Promise<void> } = {
      name: "timed",
      probe: async () => ({ usable: true, detail: "test" }),
      apply: async () => {
        at["apply"] = clock.now();
        return { changes: [] };
      },
      stats: async () => [],
      triggerHandshake: async (k: string) => {
        calls.push(k);
        at[`trigger ${k}`] = clock.now();
      },
      close: async () => undefined,
    };
    const w = quietWorker(backend, clock);
    w.apply(state([["A", "1.1.1.1:1"]]));
    await runUntil(clock, w.idle());
    clock.advance(TRIGGER_SPACING_MS);
    // A is in the backend for long enough: its trigger runs at once. B is new with an endpoint.
    w.apply(
      state([
        ["A", undefined],
        ["B", "2.2.2.2:2"],
      ]),
    );
    w.trigger("A");
    w.trigger("B");
    await runUntil(clock, w.idle());
    expect(calls).to.deep.equal(["A", "B"]);
    // Exact under the fake clock: A at once, B one spacing after the apply that added it.
    expect((at["trigger A"] as number) - (at["apply"] as number)).to.equal(0);
    expect((at["trigger B"] as number) - (at["apply"] as number)).to.equal(TRIGGER_SPACING_MS);
    // A second trigger toward A right after the first waits as well.
    const firstA = at["trigger A"] as number;
    w.trigger("A");
    await runUntil(clock, w.idle());
    expect((at["trigger A"] as number) - firstA).to.equal(TRIGGER_SPACING_MS);
    expect(calls).to.deep.equal(["A", "B", "A"]);
  });

  it("passes the asker's last seen handshake on, so the backend keeps a session nobody saw", async () => {
    const clock = t.clock;
    const unless: (number | undefined)[] = [];
    const backend: Backend & { triggerHandshake(k: string, u?: number): Promise<void> } = {
      name: "live",
      probe: async () => ({ usable: true, detail: "test" }),
      apply: async () => ({ changes: [] }),
      stats: async () => [],
      triggerHandshake: async (_k: string, u?: number) => void unless.push(u),
      close: async () => undefined,
    };
    const w = quietWorker(backend, clock);
    w.apply(state([["A", undefined]]));
    await runUntil(clock, w.idle());
    w.trigger("A", 7_000);
    await runUntil(clock, w.idle());
    expect(unless).to.deep.equal([7_000]);
  });
});

describe("backend worker under a slow wireguard-go", () => {
  const t = useFakeClock();

  it("a stats read waits at most STATS_OVERDUE_MS behind a stream of triggers", async () => {
    const clock = t.clock;
    const calls: { what: string; at: number }[] = [];
    const backend: Backend & { triggerHandshake(k: string): Promise<void> } = {
      name: "slow",
      probe: async () => ({ usable: true, detail: "test" }),
      apply: async () => ({ changes: [] }),
      stats: async () => {
        calls.push({ what: "stats", at: clock.now() });
        return [];
      },
      // Each UAPI request takes 100 ms (a loaded host).
      triggerHandshake: (k: string) => {
        calls.push({ what: `trigger ${k}`, at: clock.now() });
        return sleep(clock, 100);
      },
      close: async () => undefined,
    };
    const w = quietWorker(backend, clock);
    const t0 = clock.now();
    for (let i = 0; i < 20; i++) w.trigger(`P${i}`);
    w.stats();
    await runUntil(clock, w.idle());
    const stats = calls.find((c) => c.what === "stats");
    expect(calls).to.have.length(21);
    // Not after all 20 triggers (2 s): the engine must see handshakes while it retriggers.
    expect((stats?.at ?? Infinity) - t0).to.be.at.most(STATS_OVERDUE_MS + 100);
  });
});

describe("backend worker, failing backend", () => {
  const t = useFakeClock();

  it("applies a failed state again (the engine will not resend it), then runs the queued trigger", async () => {
    const clock = t.clock;
    const calls: string[] = [];
    let fail = 2;
    const backend: Backend & { triggerHandshake(k: string): Promise<void> } = {
      name: "flaky",
      probe: async () => ({ usable: true, detail: "test" }),
      apply: async (d) => {
        calls.push(
          `${clock.now()} apply ${d.peers.map((p) => `${p.publicKey}=${p.endpoint ?? "-"}`).join(",")}`,
        );
        if (fail-- > 0) throw new Error("UAPI: no reply in time");
        return { changes: [] };
      },
      stats: async () => [],
      triggerHandshake: async (k: string) => void calls.push(`${clock.now()} trigger ${k}`),
      close: async () => undefined,
    };
    const errors: string[] = [];
    const w = new BackendWorker(
      backend,
      { onApplied: () => undefined, onStats: () => undefined, onError: (op) => errors.push(op) },
      { clock },
    );
    const t0 = clock.now();
    w.apply(state([["A", "1.1.1.1:1"]]));
    w.trigger("A");
    await runUntil(clock, w.idle());
    // Retried after 500 ms, then 1 s (doubling); the trigger once the apply went through, spaced
    // from the initiation WireGuard itself makes for a peer added with an endpoint.
    expect(calls).to.deep.equal([
      `${t0} apply A=1.1.1.1:1`,
      `${t0 + 500} apply A=1.1.1.1:1`,
      `${t0 + 1_500} apply A=1.1.1.1:1`,
      `${t0 + 1_500 + TRIGGER_SPACING_MS} trigger A`,
    ]);
    expect(errors).to.deep.equal(["apply", "apply"]);
  });

  it("stop() cuts a retry wait short: the pending state is tried once more, then nothing", async () => {
    const clock = t.clock;
    let applies = 0;
    const backend: Backend = {
      name: "down",
      probe: async () => ({ usable: true, detail: "test" }),
      apply: async () => {
        applies++;
        throw new Error("down");
      },
      stats: async () => [],
      close: async () => undefined,
    };
    const w = quietWorker(backend, clock);
    w.apply(state([["A", "1.1.1.1:1"]]));
    await new Promise((r) => setImmediate(r));
    expect(applies).to.equal(1);
    w.stop();
    await w.idle();
    expect(applies).to.equal(2);
    expect(clock.pending()).to.equal(0);
  });
});
