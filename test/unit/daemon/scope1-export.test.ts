/**
 * The daemon on the bus (src/daemon/scope1-export.ts): a whole daemon in
 * the simulator, its cc.ltgc.Scope1 object on a fake bus, called as the bus
 * would call it. Pause/Resume are the engine's admin pause; the backend's
 * own switch and the admin pause must both allow before the engine runs.
 */
import { expect } from "chai";
import type { Variant } from "dbus-next";
import { ADMIN_PAUSED_REASON, PAUSED_REASON } from "../../../src/core/engine/admin.js";
import { startScope1Export, scope1State } from "../../../src/daemon/scope1-export.js";
import type { Scope1Interface } from "../../../dbus/scope1.js";
import { useFakeClock } from "../helpers/fake-clock.js";
import { useDaemonWorld, type DaemonNode, type DaemonWorld } from "../helpers/daemon-world.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet } as never;

/** A MessageBus as far as exportScope1 uses it; keeps the exported object and every signal sent. */
function fakeBus() {
  const b = {
    iface: undefined as Scope1Interface | undefined,
    signals: [] as string[],
    names: [] as string[],
    export(_path: string, iface: Scope1Interface) {
      b.iface = iface;
      // What dbus-next's bus does with a signal: send it; here, record it.
      (iface as unknown as { $emitter: NodeJS.EventEmitter }).$emitter.on(
        "signal",
        (opts: { name: string }, result: unknown[]) => b.signals.push(`${opts.name} ${result.join(" ")}`),
      );
    },
    unexport() {
      b.iface = undefined;
    },
    requestName: async (name: string) => (b.names.push(name), 1),
    releaseName: async () => 1,
    on() {},
    disconnect() {},
  };
  return b;
}

const flat = (d: Record<string, Variant>) =>
  Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.value]));

describe("daemon: cc.ltgc.Scope1 on the bus", function () {
  this.timeout(30_000);
  const t = useFakeClock();
  let w: DaemonWorld;
  useDaemonWorld(t, (world) => (w = world));

  async function servedPair(): Promise<{ a: DaemonNode; b: DaemonNode; bus: ReturnType<typeof fakeBus> }> {
    const bus = fakeBus();
    const a = w.add({ name: "a" });
    a.exportBus = (d) =>
      startScope1Export(d, {
        network: "mesh",
        iface: "scope0",
        logger: quiet,
        bus: () => bus as never,
        policyInstalled: () => true,
      });
    const b = w.add({ name: "b", nat: "full-cone" });
    await w.up(a, b);
    await w.advanceUntil(() => w.allDirect(), 10_000);
    expect(w.allDirect(), w.logs()).to.equal(true);
    return { a, b, bus };
  }

  it("status and peers for readers; Pause stops applies, Resume catches up; StateChanged on each change", async () => {
    const { a, bus } = await servedPair();
    const iface = bus.iface!;
    expect(bus.names).to.deep.equal(["cc.ltgc.Scope1.mesh"]);
    expect(flat(iface.GetStatus())).to.deep.include({
      network: "mesh",
      state: "running",
      paused: false,
      interface: "scope0",
      backend: "fake",
    });
    expect((flat(iface.GetStatus()).addresses as string[])[0]).to.match(/^10\.\d+\.\d+\.\d+\/\d+$/);
    const [peer] = iface.GetPeers().map(flat);
    expect(peer).to.deep.include({ name: "b", path: "direct", "public-key": w.nodes[1]!.wgKeys.publicKey });
    expect(peer!["latency-ms"]).to.be.a("number");
    const signalsBefore = bus.signals.length;

    await iface.Pause();
    expect(bus.signals.slice(signalsBefore)).to.deep.equal(["StateChanged paused true"]);
    expect(a.status().admin).to.equal("paused");
    expect(a.peer("b")?.reason).to.equal(ADMIN_PAUSED_REASON);
    const applies = a.backend.applies.length;
    const c = w.add({ name: "c", nat: "port-restricted" });
    await w.up(c);
    await w.advance(5_000);
    expect(a.backend.applies.length, "applies while paused").to.equal(applies);

    await iface.Resume();
    expect(bus.signals.slice(signalsBefore)).to.deep.equal([
      "StateChanged paused true",
      "StateChanged running false",
    ]);
    await w.advanceUntil(() => w.allDirect(), 10_000);
    expect(w.allDirect(), w.logs()).to.equal(true);
    expect(a.backend.last?.peers.map((p) => p.publicKey)).to.include(c.wgKeys.publicKey);
    await w.stop();
  });

  it("the backend's switch and the admin pause both hold: resuming one leaves the other in force", async () => {
    const { a, bus } = await servedPair();
    const iface = bus.iface!;
    a.backend.setActive(false);
    expect(flat(iface.GetStatus())).to.deep.include({ state: "switched-off", paused: true });
    await iface.Pause();
    a.backend.setActive(true); // the user switches on, the admin pause still holds
    expect(a.status().admin).to.equal("paused");
    expect(a.peer("b")?.reason).to.equal(ADMIN_PAUSED_REASON);
    a.backend.setActive(false);
    await iface.Resume(); // the admin resumes, the user's switch is still off
    expect(a.status().admin).to.equal("switched-off");
    expect(a.peer("b")?.reason).to.equal(PAUSED_REASON);
    a.backend.setActive(true);
    expect(a.status().admin).to.equal("active");
    await w.stop();
  });

  it("close() never waits for a bus that does not answer (a shutdown must not hang on it)", async () => {
    const bus = fakeBus();
    let disconnected = false;
    let asked = false;
    Object.assign(bus, {
      requestName: () => ((asked = true), new Promise(() => {})),
      disconnect: () => (disconnected = true),
    });
    const d = { lifecycle: "member", adminMode: () => "active" } as never;
    const e = startScope1Export(d, {
      network: "mesh",
      iface: "scope0",
      logger: quiet,
      bus: () => bus as never,
      policyInstalled: () => true,
    });
    // The bus modules load asynchronously: close once the name is being asked for.
    for (let i = 0; i < 100 && !asked; i++) await new Promise((r) => setImmediate(r));
    expect(asked, "the name was asked for").to.equal(true);
    await e!.close();
    expect(disconnected).to.equal(true);
    await w.stop();
  });

  it("Pause before the daemon is a member is refused with a reason; no policy installed, no bus", async () => {
    expect(scope1State("starting", undefined)).to.equal("joining");
    const d = { lifecycle: "starting", adminPause: () => {} } as never;
    expect(
      startScope1Export(d, { network: "mesh", iface: "scope0", logger: quiet, policyInstalled: () => false }),
    ).to.equal(undefined);
    const a = w.add({ name: "a" });
    await a.join();
    a.start();
    expect(() => a.daemon!.adminPause(true)).to.throw(/still joining/);
    await w.stop();
  });
});

describe("daemon: scope recreate", function () {
  this.timeout(30_000);
  const t = useFakeClock();
  let w: DaemonWorld;
  useDaemonWorld(t, (world) => (w = world));

  it("asks the backend to allow it, then resumes: the full re-apply makes the profile again", async () => {
    const a = w.add({ name: "a" });
    const b = w.add({ name: "b", nat: "full-cone" });
    await w.up(a, b);
    await w.advanceUntil(() => w.allDirect(), 10_000);
    const asked: string[] = [];
    Object.assign(a.backend, { allowRecreate: async () => void asked.push("allowRecreate") });
    a.backend.setActive(false); // what the NetworkManager plugin reports when its profile is deleted
    a.wg.apply([]); // ... and the device went with it
    expect(a.status().admin).to.equal("switched-off");
    const applies = a.backend.applies.length;
    expect(await a.daemon!.recreate()).to.deep.equal({ backend: "fake" });
    expect(asked).to.deep.equal(["allowRecreate"]);
    expect(a.status().admin).to.equal("active");
    await w.advanceUntil(() => w.allDirect(), 10_000);
    expect(a.backend.applies.length).to.be.greaterThan(applies);
    expect(a.backend.last?.peers.map((p) => p.publicKey)).to.deep.equal([b.wgKeys.publicKey]);
    await w.stop();
  });

  it("a backend with nothing to recreate: a usage error that says so", async () => {
    const a = w.add({ name: "a" });
    await w.up(a);
    const err = (await a.daemon!.recreate().catch((e: unknown) => e)) as { code: string; message: string };
    expect(err).to.include({ code: "usage", message: "the fake backend has nothing to recreate" });
    await w.stop();
  });
});
