// Issue 14, acceptance 4: the path between a daemon and the registry starts
// dropping packets silently (nftables input drops at both ends: no
// RST, no FIN, TCP none the wiser). The daemon says `registry: disconnected`
// within 45 s, its tunnels keep working, and when the path returns it
// resumes the stream with no event lost or repeated: it handled exactly the
// events the registry's own database holds for it since before the cut.

import { readFileSync } from "node:fs";
import { expect } from "chai";
import { skipUnlessLab } from "./lab.js";
import { ping } from "./checks.js";
import { run } from "./netns.js";
import { Scenario } from "./scenario.js";
import { peerNamed, type ScopeStatus } from "./status.js";
import type { World } from "./world.js";

const WORLD: World = {
  hosts: [
    { name: "reg", v6: false },
    { name: "a", v6: false },
    { name: "b", v6: false },
    { name: "c", v6: false },
  ],
  routers: [],
};

interface StreamStatus {
  registry: "connected" | "disconnected";
  stream: { lastEventId: number; delivered: number; repeated: number; silent: number };
}
const streamOf = (s: ScopeStatus): StreamStatus => s as unknown as StreamStatus;

const CUT = "sl-cut";

/** What a's daemon logged about losing the stream, for the figures. */
const lostLines = (log: string): string[] =>
  readFileSync(log, "utf8")
    .split("\n")
    .filter((l) => l.includes("event stream lost"))
    .map((l) => l.replace(/^.*event stream lost /, ""));

describe("lab: a registry path that drops packets silently", function () {
  this.timeout(240_000);
  let sc: Scenario | undefined;

  before(async function () {
    skipUnlessLab(this);
    sc = await Scenario.start(WORLD, "reg");
    await sc.joinAll(["a", "b"]);
    await sc.waitConverged(["a", "b"], 30_000);
  });

  after(async () => {
    for (const h of ["a", "reg"])
      await sc?.lab.exec(h, ["nft", "delete", "table", "inet", CUT], { allowFail: true });
    await sc?.teardown();
  });

  it("is noticed within 45 s, keeps tunnels, and resumes with every event once", async () => {
    const s = sc as Scenario;
    const reg = s.lab.publicV4("reg");
    const before = await s.status("a");
    const { lastEventId: l0, delivered: d0 } = streamOf(before).stream;
    expect(streamOf(before).registry).to.equal("connected");

    // Input hooks on both ends: a dropped packet vanishes. (An output-hook drop
    // would fail the sender's own sendmsg with EPERM, which TCP reports: not silent.)
    const cut = async (host: string, from: string): Promise<void> => {
      await s.lab.exec(host, ["nft", "-f", "-"], {
        input: `table inet ${CUT} { chain in { type filter hook input priority 0; ip saddr ${from} drop; }; }\n`,
      });
    };
    await cut("a", reg);
    await cut("reg", s.lab.publicV4("a"));
    const t0 = Date.now();
    await s.waitStatus(
      "a",
      (st) => streamOf(st).registry === "disconnected",
      45_000,
      "registry disconnected",
    );
    const noticedMs = Date.now() - t0;

    // Events for a while it cannot hear them: c joins (peerJoin and what follows).
    await s.join("c");
    await s.waitStatus("b", (st) => peerNamed(st, "c")?.path === "direct", 30_000, "c direct");
    const bAddr = peerNamed(await s.status("a"), "b")?.address ?? "";
    const inTunnel = await ping(s.lab, "a", bAddr, 5);
    expect(inTunnel.received, "a → b through the tunnel while the registry is cut off").to.equal(5);

    await s.lab.exec("reg", ["nft", "delete", "table", "inet", CUT]);
    await s.lab.exec("a", ["nft", "delete", "table", "inet", CUT]);
    const t1 = Date.now();
    const back = await s.waitStatus(
      "a",
      (st) => streamOf(st).registry === "connected" && peerNamed(st, "c")?.path === "direct",
      60_000,
      "registry connected, c direct",
    );
    const resumedMs = Date.now() - t1;
    const { lastEventId: l1, delivered: d1, repeated, silent } = streamOf(back).stream;

    const self = before.self.id;
    const q = `SELECT count(*) FROM events WHERE network = 'lab' AND id > ${l0} AND id <= ${l1}
      AND (recipient IS NULL OR recipient = '${self}') AND sender != '${self}'`;
    const held = Number((await run(["sqlite3", "-readonly", s.registryDb, q])).stdout.trim());
    console.log(
      `      noticed after ${noticedMs} ms, resumed ${resumedMs} ms after the path returned; ` +
        `events ${l0}→${l1}: registry holds ${held} for a, a handled ${d1 - d0}, repeated ${repeated}, ` +
        `silent streams ${silent}, ${lostLines(s.edge("a").log).join("; ")}`,
    );
    // Here TCP keepalive (Node's agent: 1 s idle, then libuv's probes) usually
    // ends the stream first; the heartbeat watchdog is the bound either way.
    expect(held).to.be.greaterThan(0);
    expect(d1 - d0, "every event the registry holds for a, each once").to.equal(held);
    expect(repeated).to.equal(0);
  });

  it("a registry that stops talking while TCP stays up (SIGSTOP) is noticed by the heartbeat watchdog", async () => {
    const s = sc as Scenario;
    const pid = s.registry?.pid ?? 0;
    const { silent: s0 } = streamOf(await s.status("b")).stream;
    process.kill(pid, "SIGSTOP");
    const t0 = Date.now();
    try {
      await s.waitStatus(
        "b",
        (st) => streamOf(st).registry === "disconnected",
        45_000,
        "registry disconnected",
      );
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const noticedMs = Date.now() - t0;
    const back = await s.waitStatus("b", (st) => streamOf(st).registry === "connected", 30_000, "connected");
    const bAddr = peerNamed(back, "a")?.address ?? "";
    expect((await ping(s.lab, "b", bAddr, 3)).received).to.equal(3);
    console.log(`      noticed after ${noticedMs} ms; ${lostLines(s.edge("b").log).slice(-2).join("; ")}`);
    expect(streamOf(back).stream.silent).to.be.greaterThan(s0);
    expect(streamOf(back).stream.repeated).to.equal(0);
  });
});
