// Acceptance 5 and 6 (issue #4), sharing one world:
// 5. An edge moved behind another NAT (new addresses, new public mapping)
//    regains direct paths within 5 s, without a restart.
// 6. `kill -9` of a daemon and a restart lose no in-tunnel packet (the tunnel
//    is the kernel's/wireguard-go's, not the daemon's); `kill -9` of the
//    registry and a restart keep tunnels working, and the daemons resync
//    within 5 s: a peer that joins after the restart is seen by all of them.

import { expect } from "chai";
import { skipUnlessLab } from "./lab.js";
import { LongPing, ping } from "./checks.js";
import { Scenario } from "./scenario.js";
import { allSettled, peerNamed, type ScopeStatus } from "./status.js";
import { delay } from "./wait.js";
import type { World } from "./world.js";

const EDGES = ["p", "q", "f", "m"] as const;

const WORLD: World = {
  routers: [
    { name: "r-q", nat: "port-restricted", v6: false },
    { name: "r-f", nat: "full-cone", v6: false },
    { name: "r-m1", nat: "port-restricted", v6: false },
    // m's destination: an address-restricted 1:1 NAT, different public address and filtering.
    { name: "r-m2", nat: "address-restricted", v6: false },
  ],
  hosts: [
    { name: "reg", v6: false },
    { name: "p", v6: false },
    { name: "q", router: "r-q", v6: false },
    { name: "f", router: "r-f", v6: false },
    { name: "m", router: "r-m1", v6: false },
    { name: "n", v6: false },
  ],
};

describe("lab: migration and restarts", function () {
  this.timeout(240_000);
  let sc: Scenario | undefined;

  before(async function () {
    skipUnlessLab(this);
    sc = await Scenario.start(WORLD, "reg");
    await sc.joinAll(EDGES);
    await sc.waitConverged([...EDGES], 30_000);
  });

  after(async () => {
    await sc?.teardown();
  });

  const addrOf = async (host: string): Promise<string> =>
    ((await (sc as Scenario).status(host)) as ScopeStatus).self.address;

  it("an edge moved behind another NAT regains direct paths within 5 s, without a restart", async function () {
    const s = sc as Scenario;
    const pid = s.edge("m").daemon?.pid;
    const oldEndpoint = s.publicWgEndpoint("m");
    await s.lab.moveHost("m", "r-m2");
    const t0 = Date.now();
    const want = s.publicWgEndpoint("m");
    expect(want).to.not.equal(oldEndpoint);
    const others = EDGES.filter((h) => h !== "m");
    await Promise.all([
      s.waitStatus(
        "m",
        (st) => others.every((o) => peerNamed(st, o)?.path === "direct"),
        15_000,
        "all direct again",
      ),
      ...others.map((h) =>
        s.waitStatus(
          h,
          (st) => peerNamed(st, "m")?.path === "direct" && peerNamed(st, "m")?.endpoint === want,
          15_000,
          `m direct at ${want}`,
        ),
      ),
    ]);
    const ms = Date.now() - t0;
    console.log(`    m moved ${oldEndpoint} → ${want}: direct with every peer after ${ms} ms`);
    expect(s.edge("m").daemon?.pid, "m's daemon was restarted").to.equal(pid);
    expect(ms).to.be.at.most(5_000);
    for (const h of others)
      expect((await ping(s.lab, "m", await addrOf(h))).received, `m → ${h} ping`).to.equal(3);
  });

  it("kill -9 of a daemon and a restart lose no in-tunnel packet", async function () {
    const s = sc as Scenario;
    const [pAddr, qAddr] = [await addrOf("p"), await addrOf("q")];
    const pings = [LongPing.start(s.lab, "p", qAddr, 12), LongPing.start(s.lab, "q", pAddr, 12)];
    await delay(1_000);
    await s.stopDaemon("q", true);
    await s.startDaemon(s.edge("q"));
    await s.waitStatus(
      "q",
      (st) => allSettled(st, s.peersOf("q")),
      15_000,
      "all peers settled after restart",
    );
    expect(
      pings.every((p) => p.running),
      "the restart outlasted the ping; lengthen it",
    ).to.equal(true);
    const [toQ, fromQ] = await Promise.all(pings.map((p) => p.done()));
    console.log(
      `    during kill -9 + restart: p → q ${toQ?.received}/${toQ?.sent}, q → p ${fromQ?.received}/${fromQ?.sent}`,
    );
    expect(toQ?.received, "p → q").to.equal(toQ?.sent);
    expect(fromQ?.received, "q → p").to.equal(fromQ?.sent);
  });

  it("kill -9 of the registry: tunnels keep working, daemons resync within 5 s of its restart", async function () {
    const s = sc as Scenario;
    const longPing = LongPing.start(s.lab, "p", await addrOf("f"), 10);
    await s.killRegistry();
    // The outage itself: long enough for every daemon's event stream to notice.
    await delay(2_000);
    await s.startRegistry();
    const t0 = Date.now();
    await s.join("n");
    await Promise.all(
      EDGES.map((h) => s.waitStatus(h, (st) => peerNamed(st, "n") !== undefined, 15_000, "n listed")),
    );
    const ms = Date.now() - t0;
    console.log(`    every old daemon lists n ${ms} ms after the registry answered again`);
    const r = await longPing.done();
    console.log(`    registry outage: p → f ${r.received}/${r.sent}`);
    expect(r.received, "p → f during the registry outage").to.equal(r.sent);
    expect(ms).to.be.at.most(5_000);
    await s.waitConverged([...EDGES, "n"], 30_000);
  });
});
