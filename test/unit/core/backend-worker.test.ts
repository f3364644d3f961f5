import { expect } from "chai";
import type { ApplyResult, Backend, DesiredState, PeerStats } from "../../../src/core/backend.js";
import { BackendWorker, TRIGGER_SPACING_MS } from "../../../src/daemon/backend-worker.js";

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

  it("keeps TRIGGER_SPACING_MS between initiations toward one peer, and none for a peer already there", async () => {
    const at: Record<string, number> = {};
    const calls: string[] = [];
    const backend: Backend & { triggerHandshake(k: string): Promise<void> } = {
      name: "timed",
      probe: async () => ({ usable: true, detail: "test" }),
      apply: async () => {
        at["apply"] = Date.now();
        return { changes: [] };
      },
      stats: async () => [],
      triggerHandshake: async (k: string) => {
        calls.push(k);
        at[`trigger ${k}`] = Date.now();
      },
      close: async () => undefined,
    };
    const w = new BackendWorker(backend, {
      onApplied: () => undefined,
      onStats: () => undefined,
      onError: () => undefined,
    });
    w.apply(state([["A", "1.1.1.1:1"]]));
    await w.idle();
    await new Promise((r) => setTimeout(r, TRIGGER_SPACING_MS));
    // A is in the backend for long enough: its trigger runs at once. B is new with an endpoint.
    w.apply(
      state([
        ["A", undefined],
        ["B", "2.2.2.2:2"],
      ]),
    );
    w.trigger("A");
    w.trigger("B");
    await w.idle();
    expect(calls).to.deep.equal(["A", "B"]);
    expect((at["trigger A"] as number) - (at["apply"] as number)).to.be.below(TRIGGER_SPACING_MS);
    expect((at["trigger B"] as number) - (at["apply"] as number)).to.be.at.least(TRIGGER_SPACING_MS - 1);
    // A second trigger toward A right after the first waits as well.
    const firstA = at["trigger A"] as number;
    w.trigger("A");
    await w.idle();
    expect((at["trigger A"] as number) - firstA).to.be.at.least(TRIGGER_SPACING_MS - 1);
    expect(calls).to.deep.equal(["A", "B", "A"]);
  });
});

describe("backend worker, failing backend", () => {
  it("applies a failed state again (the engine will not resend it), then runs the queued trigger", async () => {
    const calls: string[] = [];
    let fail = 2;
    const backend: Backend & { triggerHandshake(k: string): Promise<void> } = {
      name: "flaky",
      probe: async () => ({ usable: true, detail: "test" }),
      apply: async (d) => {
        calls.push(`apply ${d.peers.map((p) => `${p.publicKey}=${p.endpoint ?? "-"}`).join(",")}`);
        if (fail-- > 0) throw new Error("UAPI: no reply in time");
        return { changes: [] };
      },
      stats: async () => [],
      triggerHandshake: async (k: string) => void calls.push(`trigger ${k}`),
      close: async () => undefined,
    };
    const errors: string[] = [];
    const w = new BackendWorker(
      backend,
      { onApplied: () => undefined, onStats: () => undefined, onError: (op) => errors.push(op) },
      { retryMs: 1 },
    );
    w.apply(state([["A", "1.1.1.1:1"]]));
    w.trigger("A");
    await w.idle();
    expect(calls).to.deep.equal(["apply A=1.1.1.1:1", "apply A=1.1.1.1:1", "apply A=1.1.1.1:1", "trigger A"]);
    expect(errors).to.deep.equal(["apply", "apply"]);
  });
});
