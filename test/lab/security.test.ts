// Acceptance 7 (issue #4): forged and replayed probes sent from a lab host
// never change an endpoint. Real probes between t (public) and f (behind a
// full cone, so both probe ports are reachable from anywhere) are captured
// as they arrive, then replayed from a stranger's host and from f's host on
// another port, alongside probes with a bad MAC, probes "signed" with a wrong
// key, and random garbage. Both daemons must keep the endpoint they had, in
// `scope status` and in WireGuard itself, and stay healthy.

import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import { encodeProbe } from "../../src/core/probe/codec.js";
import { skipUnlessLab } from "./lab.js";
import { ping, wgShow } from "./checks.js";
import { rssKb } from "../registry/harness.js";
import { Scenario } from "./scenario.js";
import { Replayer, sendDatagrams, Sniffer } from "./sniff.js";
import { CmdlineSampler } from "./cmdlines.js";
import { peerNamed } from "./status.js";
import { waitFor } from "./wait.js";
import type { World } from "./world.js";

const WORLD: World = {
  routers: [{ name: "r-f", nat: "full-cone", v6: false }],
  hosts: [
    { name: "reg", v6: false },
    { name: "t", v6: false },
    { name: "f", router: "r-f", v6: false },
    { name: "atk", v6: false },
    { name: "n", v6: false },
  ],
};

const CANARY = `canary-secret-${randomBytes(8).toString("hex")}`;

interface Victim {
  readonly host: "t" | "f";
  readonly peer: "t" | "f";
  /** Where attackers reach its prober. */
  readonly probeTarget: string;
  /** Real probes from the peer, captured as they arrived during the join. */
  probes: Buffer[];
  endpoint: string;
  peerKey: string;
  peerId: string;
}

describe("lab: forged and replayed probes", function () {
  this.timeout(180_000);
  let sc: Scenario | undefined;
  const victims: Victim[] = [];
  let argvs: CmdlineSampler;

  before(async function () {
    skipUnlessLab(this);
    const s = (sc = await Scenario.start(WORLD, "reg"));
    // Issue 14, acceptance 9: every process's argv, all through both joins.
    argvs = new CmdlineSampler();
    // A canary with a made-up secret on its argv: the sampler must see it, or it proves nothing.
    spawn(process.execPath, ["-e", "setTimeout(() => {}, 500)", CANARY], { stdio: "ignore" });
    // Capture from the very first probe: once settled, probing backs off.
    const t = await s.join("t");
    const tSniff = await Sniffer.start(s.lab, "t", t.probePort);
    await s.waitStatus("t", () => true, 5_000, "up");
    // f's sniffer must see its join too; its ports are fixed per host.
    const fSniff = await Sniffer.start(s.lab, "f", s.ports("f").probePort);
    const f = await s.join("f");
    await s.waitConverged(["t", "f"], 30_000);
    tSniff.stop();
    fSniff.stop();
    await argvs.stop();
    const keys = await s.registryPeers();
    for (const [host, peer, sniffer, probeTarget] of [
      ["t", "f", tSniff, `${s.lab.publicV4("t")}:${t.probePort}`],
      ["f", "t", fSniff, `${s.lab.publicV4("f")}:${f.probePort}`],
    ] as const) {
      const st = await s.status(host);
      const p = peerNamed(st, peer);
      if (p?.endpoint === null || p === undefined || p.path !== "direct")
        throw new Error(`${host} → ${peer} not direct`);
      victims.push({
        host,
        peer,
        probeTarget,
        probes: sniffer.captured
          .filter((c) => c.from.startsWith(`${s.lab.publicV4(peer)}:`))
          .map((c) => c.payload),
        endpoint: p.endpoint,
        peerId: p.id,
        peerKey: keys.find((k) => k.name === peer)?.wgPublicKey ?? "",
      });
    }
  });

  after(async () => {
    await sc?.teardown();
  });

  /**
   * Watches a victim for `ms`: every status and `wg show` sample must keep the
   * peer direct at the endpoint it had before the attack. Returns deviations.
   */
  async function watch(v: Victim, ms: number): Promise<string[]> {
    const s = sc as Scenario;
    const bad: string[] = [];
    const until = Date.now() + ms;
    await waitFor(
      async () => {
        const p = peerNamed(await s.status(v.host), v.peer);
        if (p?.endpoint !== v.endpoint || p.path !== "direct") bad.push(`status: ${p?.path} ${p?.endpoint}`);
        const wg = (await wgShow(s.lab, v.host, s.edge(v.host).iface, "endpoints")).get(v.peerKey);
        if (wg !== v.endpoint) bad.push(`wg show: ${wg}`);
        return Date.now() >= until;
      },
      { timeoutMs: ms + 10_000, intervalMs: 100, what: "the observation window" },
    );
    return [...new Set(bad)].map((b) => `${v.host} → ${v.peer}: ${b} (was ${v.endpoint})`);
  }

  /** Sends `payloads` to each victim from the stranger and from the peer's own host on another port. */
  async function attack(make: (v: Victim) => Buffer[]): Promise<{ deviations: string[]; replies: number }> {
    const s = sc as Scenario;
    let replies = 0;
    for (const v of victims) {
      const payloads = make(v);
      expect(payloads.length, `payloads for ${v.host}`).to.be.greaterThan(0);
      replies += await sendDatagrams(s.lab, "atk", v.probeTarget, payloads);
      replies += await sendDatagrams(s.lab, "atk", v.probeTarget, payloads, s.edge(v.peer).probePort);
      replies += await sendDatagrams(s.lab, v.peer, v.probeTarget, payloads, 40_000);
    }
    const deviations = (await Promise.all(victims.map((v) => watch(v, 3_000)))).flat();
    return { deviations, replies };
  }

  const captured = (v: Victim): Buffer[] => v.probes;

  it("captures real probes between the two daemons", function () {
    for (const v of victims) expect(captured(v).length, `probes captured at ${v.host}`).to.be.greaterThan(0);
  });

  it("replayed real probes, from a stranger and from another port, change no endpoint", async function () {
    const r = await attack(captured);
    console.log(`    replays answered: ${r.replies} datagrams`);
    expect(r.deviations).to.deep.equal([]);
  });

  it("tampered probes, probes with a wrong key and garbage change no endpoint", async function () {
    const r = await attack((v) => {
      const real = captured(v);
      const tampered = real.flatMap((p) => {
        const badMac = Buffer.from(p);
        badMac[badMac.length - 1] ^= 0x01;
        const newNonce = Buffer.from(p);
        randomBytes(8).copy(newNonce, 16);
        const freshTime = Buffer.from(p);
        freshTime.writeBigUInt64BE(BigInt(Date.now()), 24);
        return [badMac, newNonce, freshTime];
      });
      const wrongKey = randomBytes(32);
      const now = Date.now();
      const forged = [
        encodeProbe(
          { type: "ping", sender: v.peerId, nonce: randomBytes(8).toString("hex"), time: now },
          wrongKey,
        ),
        encodeProbe(
          {
            type: "pong",
            sender: v.peerId,
            nonce: randomBytes(8).toString("hex"),
            time: now,
            echoNonce: randomBytes(8).toString("hex"),
            observed: { address: (sc as Scenario).lab.publicV4("atk"), port: 4444 },
          },
          wrongKey,
        ),
      ].map((b) => Buffer.from(b));
      const garbage = Array.from({ length: 20 }, (_, i) => randomBytes(i * 13));
      const lookalike = [
        Buffer.concat([Buffer.from("SCPR\x01\x01\x00\x00"), randomBytes(40)]),
        Buffer.from("SCPR"),
      ];
      return [...tampered, ...forged, ...garbage, ...lookalike];
    });
    expect(r.deviations).to.deep.equal([]);
  });

  it("no process's argv held a token, a private key or a PSK during the joins (issue 14, acceptance 9)", async () => {
    const s = sc as Scenario;
    const secrets = [s.tokenOf("lab")];
    for (const host of ["t", "f"]) {
      const e = s.edge(host);
      secrets.push(readFileSync(join(e.dir, "state", "lab", "wg.key"), "utf8").trim());
      secrets.push(readFileSync(join(e.dir, "state", "lab", "identity.key"), "utf8").trim());
      for (const psk of (await wgShow(s.lab, host, e.iface, "preshared-keys")).values())
        if (psk !== "(none)") secrets.push(psk);
    }
    console.log(`    ${argvs.samples} samples of /proc/*/cmdline, ${argvs.seen.size} distinct command lines`);
    expect(argvs.holding([CANARY]), "the canary's argv was seen").to.have.length(1);
    expect(argvs.holding(secrets)).to.deep.equal([]);
  });

  it("10 000 malformed inputs each on the control socket and the probe port change nothing (issue 14, acceptance 6)", async () => {
    const s = sc as Scenario;
    const v = victims.find((x) => x.host === "t") as Victim;
    const pid = s.edge("t").daemon?.pid ?? 0;
    const before = { rss: rssKb(pid), status: await s.status("t") };
    // The probe port: garbage of every length, truncated and bit-flipped real probes.
    const real = v.probes;
    const junk = Array.from({ length: 10_000 }, (_, i) => {
      const p = real[i % real.length] ?? Buffer.alloc(0);
      if (i % 3 === 0) return randomBytes(i % 1400);
      if (i % 3 === 1) return p.subarray(0, i % (p.length + 1));
      const flipped = Buffer.from(p);
      if (flipped.length) flipped[i % flipped.length] ^= 1 << (i % 8);
      return flipped;
    });
    for (let i = 0; i < junk.length; i += 2_000)
      await sendDatagrams(s.lab, "atk", v.probeTarget, junk.slice(i, i + 2_000), 0, 50);
    // The control socket: 10 000 malformed requests over many connections.
    const answers = await fuzzControl(s.edge("t").controlSocket, 10_000);
    const after = { rss: rssKb(pid), status: await s.status("t") };
    console.log(`    control answers ${answers}; RSS ${before.rss} → ${after.rss} kB`);
    expect(s.edge("t").daemon?.exitCode ?? null, "daemon still running").to.equal(null);
    expect(after.rss - before.rss, "RSS growth, kB").to.be.lessThan(64 * 1024);
    const view = (st: typeof before.status) => st.peers.map((p) => [p.name, p.path, p.endpoint]);
    expect(view(after.status)).to.deep.equal(view(before.status));
    expect(await watch(v, 1_000)).to.deep.equal([]);
  });

  it("a join the registry refuses (wrong token) leaves no interface behind", async function () {
    // join --foreground makes the interface while its request is on the wire.
    const s = sc as Scenario;
    const dir = `${s.lab.dir}/refused`;
    const args = [
      "join",
      s.registryUrl,
      "--insecure",
      "--network",
      "lab",
      "--token-file",
      "-",
      "--name",
      "refused",
    ];
    const local = ["--backend", "wg", "--interface", "sl-refused", "--listen-port", "52990"];
    const files = ["--config-dir", dir, "--state-dir", `${dir}/state`, "--foreground"];
    const refused = await s.scope("atk", [...args, ...local, ...files], "not-a-token-of-this-network").then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(refused, "scope join should fail").to.match(/scope: unknown join token/);
    const link = await s.lab.exec("atk", ["ip", "link", "show", "sl-refused"]).then(
      () => "present",
      () => "absent",
    );
    expect(link).to.equal("absent");
    expect(existsSync("/var/run/wireguard/sl-refused.sock"), "wireguard-go socket left").to.equal(false);
  });

  it("probes replayed while the peer is still pending are not answered and move nothing (issue 14, acceptance 8)", async () => {
    // n joins while t drops its WireGuard handshakes, so t keeps n pending as long
    // as the attack lasts; n's genuine probes reach t (and are captured there), and
    // each is replayed at once from n's own address on another port: what a NAT
    // rebinding looks like, and what the replay check alone tells apart.
    const s = sc as Scenario;
    const nIp = s.lab.publicV4("n");
    const { listenPort: tWg, probePort: tProbe } = s.ports("t");
    const { listenPort: nWg } = s.ports("n");
    await s.lab.exec("t", ["nft", "-f", "-"], {
      input: `table inet sl-hold { chain in { type filter hook input priority 0; ip saddr ${nIp} udp dport ${tWg} drop; }; }\n`,
    });
    const sniff = await Sniffer.start(s.lab, "t", tProbe);
    const replayer = await Replayer.start(s.lab, "n", `${s.lab.publicV4("t")}:${tProbe}`, 40_000);
    let replayed = 0;
    let pendingSeen = 0;
    const bad: string[] = [];
    try {
      await s.join("n");
      const until = Date.now() + 8_000;
      while (Date.now() < until) {
        for (const c of sniff.captured.splice(0))
          if (c.from === `${nIp}:${s.ports("n").probePort}`) {
            replayer.send(c.payload);
            replayed++;
          }
        const p = peerNamed(await s.status("t"), "n");
        if (p?.path === "pending") pendingSeen++;
        if (p?.endpoint?.endsWith(":40000")) bad.push(`status endpoint ${p.endpoint}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      sniff.stop();
      await s.lab.exec("t", ["nft", "delete", "table", "inet", "sl-hold"], { allowFail: true });
    }
    const { sent, replies } = await replayer.stop();
    const p = await s.waitStatus("t", (st) => peerNamed(st, "n")?.path === "direct", 30_000, "n direct");
    const wg = (await wgShow(s.lab, "t", s.edge("t").iface, "endpoints")).get(
      (await s.registryPeers()).find((x) => x.name === "n")?.wgPublicKey ?? "",
    );
    console.log(
      `    replayed ${replayed} (sent ${sent}) while n was pending (${pendingSeen} pending samples); answered ${replies}; then ${peerNamed(p, "n")?.endpoint}`,
    );
    expect(replayed, "probes replayed").to.be.greaterThan(0);
    expect(pendingSeen, "the replays hit a pending peer").to.be.greaterThan(0);
    expect(bad).to.deep.equal([]);
    expect(replies, "replayed probes answered").to.equal(0);
    expect(peerNamed(p, "n")?.endpoint).to.equal(`${nIp}:${nWg}`);
    expect(wg).to.equal(`${nIp}:${nWg}`);
  });

  it("both daemons are still up and the tunnel still carries traffic", async function () {
    const s = sc as Scenario;
    for (const v of victims) {
      const d = s.edge(v.host).daemon;
      expect(d?.exitCode ?? d?.signalCode ?? null, `${v.host}'s daemon exited`).to.equal(null);
      const to = (await s.status(v.peer)).self.address;
      expect((await ping(s.lab, v.host, to)).received, `${v.host} → ${v.peer} ping`).to.equal(3);
    }
  });
});

/** Sends n malformed requests to a control socket, 10 per connection; resolves with the answers received. */
async function fuzzControl(path: string, n: number): Promise<number> {
  const kinds = [
    () => randomBytes(40).toString("latin1"),
    () => "{",
    () => JSON.stringify({ cmd: "ping", peer: "x".repeat(500), count: -1 }),
    () => JSON.stringify({ cmd: "leave", extra: true }),
    () => JSON.stringify({ cmd: { toString: 1 } }),
    () => "[]",
    () => "null",
    () => JSON.stringify({ cmd: "status", __proto__: { x: 1 } }),
  ];
  let answers = 0;
  const conn = (lines: string[]): Promise<void> =>
    new Promise((resolve) => {
      const c = createConnection(path);
      c.setEncoding("utf8");
      c.on("data", (d: string) => (answers += d.split("\n").length - 1));
      c.on("close", () => resolve());
      c.on("error", () => undefined);
      c.write(lines.map((l) => l.replace(/\n/g, " ") + "\n").join(""));
      setTimeout(() => c.destroy(), 500);
    });
  for (let i = 0; i < n; i += 200)
    await Promise.all(
      Array.from({ length: 20 }, (_, j) =>
        conn(
          Array.from({ length: 10 }, (_, k) => (kinds[(i + j * 10 + k) % kinds.length] as () => string)()),
        ),
      ),
    );
  return answers;
}
