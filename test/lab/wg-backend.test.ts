/**
 * The wg backend for real: two network namespaces joined by a veth, one
 * wireguard-go interface in each, configured only through the backend
 * (every command runs under `ip netns exec`; the UAPI socket is host-wide).
 * Needs root, wireguard-go and wg(8); skips with a message otherwise.
 *
 *   npx mocha --timeout 120000 dist/test/lab/wg-backend.test.js
 */
import { expect } from "chai";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { BackendContext, DesiredState } from "../../src/core/backend.js";
import { generateWgKeyPair, type WgKeyPair } from "../../src/crypto/keys.js";
import { createWgBackend, type WgBackend } from "../../plugins/wg/index.js";
import { execRunner, type CommandRunner, type DaemonSpawner } from "../../src/exec.js";
import { acquireLabLock, releaseLabLock } from "./lock.js";

const PREFIX = "sl-wgb-";
const NS_A = `${PREFIX}a`;
const NS_B = `${PREFIX}b`;
const IF_A = `${PREFIX}a0`;
const IF_B = `${PREFIX}b0`;
const UNDERLAY_A = "192.168.201.1";
const UNDERLAY_B = "192.168.201.2";

const sh = (cmd: string, args: string[]): { code: number; out: string } => {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { code: r.status ?? 128, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
};
const must = (cmd: string, args: string[]): string => {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.out}`);
  return r.out;
};

/** Pids whose argv contains `needle`, read from /proc. */
function pidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").join(" ").includes(needle))
        out.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

function cleanup(): void {
  for (const pid of pidsWith(`wireguard-go -f ${PREFIX}`)) sh("kill", ["-9", String(pid)]);
  for (const ns of must("ip", ["netns", "list"]).split("\n")) {
    const name = ns.split(" ")[0];
    if (name?.startsWith(PREFIX)) sh("ip", ["netns", "del", name]);
  }
  for (const f of readdirSync("/var/run/wireguard", { withFileTypes: true }).filter((e) =>
    e.name.startsWith(PREFIX),
  )) {
    rmSync(join("/var/run/wireguard", f.name), { force: true });
  }
}

/** Wraps a runner and fails the test if a secret ever reaches argv. */
function guardedRunner(
  inner: CommandRunner & DaemonSpawner,
  secrets: () => string[],
  seen: string[],
): CommandRunner & DaemonSpawner {
  const check = (cmd: string, args: readonly string[]): void => {
    const line = [cmd, ...args].join(" ");
    seen.push(line);
    for (const s of secrets()) if (line.includes(s)) throw new Error(`secret on argv: ${cmd} ${args[0]}`);
  };
  return {
    run: (cmd, args, opts) => (check(cmd, args), inner.run(cmd, args, opts)),
    spawnDetached: (cmd, args, opts) => (check(cmd, args), inner.spawnDetached(cmd, args, opts)),
  };
}

const silent = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

describe("lab: wg backend on wireguard-go in two namespaces", function () {
  let keys: Record<"a" | "b", WgKeyPair>;
  let psk: string;
  let stateDir: string;
  const argvSeen: string[] = [];
  const secrets = (): string[] => [keys.a.privateKey, keys.b.privateKey, psk];
  const backends: WgBackend[] = [];

  const ctxFor = (ns: string, options: Record<string, string> = {}): BackendContext => ({
    network: "lab",
    stateDir: join(stateDir, ns),
    logger: silent,
    options: { netns: ns, flavour: "wireguard-go", ...options },
  });
  const backendIn = (ns: string, flavour: "wireguard-go" | "kernel" = "wireguard-go"): WgBackend => {
    const runner = guardedRunner(execRunner({ netns: ns }), secrets, argvSeen);
    const b = createWgBackend(ctxFor(ns, { flavour }), { runner });
    backends.push(b);
    return b;
  };

  const stateA = (peerAllowed = ["10.77.0.2/32"], withPeer = true): DesiredState => ({
    iface: { name: IF_A, privateKey: keys.a.privateKey, listenPort: 51820, addresses: ["10.77.0.1/24"] },
    peers: withPeer
      ? [
          {
            publicKey: keys.b.publicKey,
            endpoint: `${UNDERLAY_B}:51821`,
            allowedIps: peerAllowed,
            presharedKey: psk,
          },
        ]
      : [],
  });
  const stateB = (): DesiredState => ({
    iface: {
      name: IF_B,
      privateKey: keys.b.privateKey,
      listenPort: 51821,
      addresses: ["10.77.0.2/24"],
      mtu: 1380,
    },
    peers: [
      {
        publicKey: keys.a.publicKey,
        endpoint: `${UNDERLAY_A}:51820`,
        allowedIps: ["10.77.0.1/32"],
        presharedKey: psk,
      },
    ],
  });
  const ping = (ns: string, to: string): boolean =>
    sh("ip", ["netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", to]).code === 0;

  before(async function () {
    if (process.getuid?.() !== 0) {
      console.log("    (skipped: needs root for network namespaces, TUN and /var/run/wireguard)");
      return this.skip();
    }
    for (const tool of ["wireguard-go", "wg", "ip", "ping"]) {
      if (sh("sh", ["-c", `command -v ${tool}`]).code !== 0) {
        console.log(`    (skipped: ${tool} not installed; run test/setup.sh lab)`);
        return this.skip();
      }
    }
    // Another lab (a parallel run, a bench) sweeps namespaces by prefix: queue behind it.
    await acquireLabLock();
    cleanup();
    keys = { a: generateWgKeyPair(), b: generateWgKeyPair() };
    psk = generateWgKeyPair().privateKey;
    stateDir = mkdtempSync(join(tmpdir(), PREFIX));
    must("ip", ["netns", "add", NS_A]);
    must("ip", ["netns", "add", NS_B]);
    must("ip", [
      "link",
      "add",
      `${PREFIX}va`,
      "netns",
      NS_A,
      "type",
      "veth",
      "peer",
      "name",
      `${PREFIX}vb`,
      "netns",
      NS_B,
    ]);
    for (const [ns, dev, addr] of [
      [NS_A, `${PREFIX}va`, UNDERLAY_A],
      [NS_B, `${PREFIX}vb`, UNDERLAY_B],
    ] as const) {
      must("ip", ["-n", ns, "address", "add", `${addr}/24`, "dev", dev]);
      must("ip", ["-n", ns, "link", "set", dev, "up"]);
      must("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
  });

  after(async function () {
    if (process.getuid?.() !== 0 || !stateDir) return;
    for (const b of backends) await b.close({ remove: true }).catch(() => undefined);
    cleanup();
    rmSync(stateDir, { recursive: true, force: true });
    releaseLabLock();
  });

  it("brings both ends up, pings through the tunnel, reports stats", async function () {
    // Watch every process's argv while the backends work: a key must never show there.
    const leaks: string[] = [];
    const watcher = setInterval(() => {
      for (const pid of pidsWith("")) {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
          if (secrets().some((s) => cmd.includes(s))) leaks.push(cmd.split("\0")[0]!);
        } catch {
          // gone
        }
      }
    }, 5);
    const a = backendIn(NS_A);
    const b = backendIn(NS_B);
    try {
      const ra = await a.apply(stateA());
      const rb = await b.apply(stateB());
      expect(ra.changes[0]).to.equal(`interface ${IF_A} created (wireguard-go)`);
      expect(rb.changes).to.include("interface mtu 1420 => 1380");
    } finally {
      clearInterval(watcher);
    }
    expect(leaks).to.deep.equal([]);
    expect(argvSeen.some((l) => l.startsWith("wireguard-go -f"))).to.equal(true);

    expect(ping(NS_A, "10.77.0.2") || ping(NS_A, "10.77.0.2")).to.equal(true);
    const [peer] = await a.stats();
    expect(peer!.publicKey).to.equal(keys.b.publicKey);
    expect(peer!.endpoint).to.equal(`${UNDERLAY_B}:51821`);
    expect(Date.now() - peer!.lastHandshakeMs!).to.be.lessThan(30_000);
    expect(peer!.rxBytes).to.be.greaterThan(0);
    expect(peer!.txBytes).to.be.greaterThan(0);
    // B learned A's endpoint from the handshake as well as from config.
    expect((await b.stats())[0]!.endpoint).to.equal(`${UNDERLAY_A}:51820`);
    expect(must("ip", ["-n", NS_B, "-j", "link", "show", IF_B])).to.contain('"mtu":1380');
  });

  it("re-applying the same state changes nothing", async function () {
    expect((await backends[0]!.apply(stateA())).changes).to.deep.equal([]);
    expect((await backends[1]!.apply(stateB())).changes).to.deep.equal([]);
  });

  /** Trigger a's handshake toward b through BACKEND; it must complete at once and leave the config as it was. */
  async function expectTriggeredHandshake(backend: WgBackend): Promise<void> {
    const a = backends[0]!;
    const before = (await a.stats())[0]!.lastHandshakeMs!;
    await sleep(200);
    const t0 = Date.now();
    await backend.triggerHandshake(keys.b.publicKey);
    let after = before;
    while (Date.now() - t0 < 2000 && after <= before) {
      await sleep(20);
      after = (await a.stats())[0]?.lastHandshakeMs ?? before;
    }
    console.log(
      `      handshake ${after - before} ms after the previous one, ${Date.now() - t0} ms after the trigger`,
    );
    expect(after).to.be.greaterThan(before);
    expect(Date.now() - t0).to.be.lessThan(1000);
    expect(ping(NS_A, "10.77.0.2")).to.equal(true);
    // The trigger leaves the configuration as it was.
    expect((await a.apply(stateA())).changes).to.deep.equal([]);
  }

  it("triggerHandshake completes a fresh handshake at once, inside the 5 s rate limit", async function () {
    await expectTriggeredHandshake(backends[0]!);
  });

  it("changes one peer's allowed IPs and nothing else", async function () {
    const r = await backends[0]!.apply(stateA(["10.77.0.0/24"]));
    expect(r.changes).to.have.length(1);
    expect(r.changes[0]).to.match(/^peer \S+… allowed-ips 10\.77\.0\.2\/32 => 10\.77\.0\.0\/24$/);
    expect(must("wg", ["show", IF_A, "allowed-ips"]).trim()).to.equal(`${keys.b.publicKey}\t10.77.0.0/24`);
    expect(ping(NS_A, "10.77.0.2")).to.equal(true);
  });

  it("wg(8) control (the kernel flavour's channel) reads and writes the same interface", async function () {
    // No WireGuard module here, but wg(8) speaks UAPI to wireguard-go, so the
    // kernel flavour's dump parser and stdin key passing run for real.
    const k = backendIn(NS_A, "kernel");
    expect((await k.apply(stateA(["10.77.0.0/24"]))).changes).to.deep.equal([]);
    const rotated = generateWgKeyPair().privateKey;
    const old = psk;
    psk = rotated; // also makes the argv guard look for the new PSK
    const withNewPsk = {
      ...stateA(["10.77.0.0/24"]),
      peers: stateA(["10.77.0.0/24"]).peers.map((p) => ({ ...p, presharedKey: rotated })),
    };
    expect((await k.apply(withNewPsk)).changes).to.deep.equal([
      `peer ${keys.b.publicKey.slice(0, 8)}… preshared-key (set) => (new)`,
    ]);
    expect(must("wg", ["show", IF_A, "preshared-keys"])).to.contain(rotated);
    // Put the old PSK back through UAPI so both ends agree again. That
    // backend diffs against the device as it last read or wrote it: the PSK
    // changed behind its back, which its next stats() read (the daemon polls
    // it every few seconds) sees.
    psk = old;
    await backends[0]!.stats();
    expect((await backends[0]!.apply(stateA(["10.77.0.0/24"]))).changes).to.have.length(1);
    expect(ping(NS_A, "10.77.0.2")).to.equal(true);
  });

  it("the kernel flavour's handshake trigger (one wg set: remove, re-add, restore) completes a handshake at once", async function () {
    await backends[0]!.apply(stateA());
    const k = backendIn(NS_A, "kernel");
    expect((await k.apply(stateA())).changes).to.deep.equal([]);
    await expectTriggeredHandshake(k);
  });

  it("the tunnel survives a kill -9 of the daemon, and a restarted daemon reuses it", async function () {
    const indexUrl = new URL("../../plugins/wg/index.js", import.meta.url).href;
    const script = `
      import { createWgBackend } from ${JSON.stringify(indexUrl)};
      let input = ""; for await (const c of process.stdin) input += c;
      const { ctx, desired } = JSON.parse(input);
      const quiet = { debug() {}, info() {}, warn() {}, error() {} };
      const r = await createWgBackend({ ...ctx, logger: quiet }).apply(desired);
      console.log(JSON.stringify(r));
      setInterval(() => {}, 1000);`;
    const { logger: _l, ...ctx } = ctxFor(NS_B);
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    child.stdin.end(JSON.stringify({ ctx, desired: stateB() }));
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.setEncoding("utf8").once("data", resolve);
      child.once("exit", (code) => reject(new Error(`daemon exited ${code}`)));
    });
    expect(JSON.parse(line)).to.deep.equal({ changes: [] });
    const wgPids = pidsWith(`wireguard-go -f ${IF_B}`);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));

    expect(pidsWith(`wireguard-go -f ${IF_B}`)).to.deep.equal(wgPids);
    expect(ping(NS_B, "10.77.0.1")).to.equal(true);
    const restarted = backendIn(NS_B);
    expect((await restarted.apply(stateB())).changes).to.deep.equal([]);
    expect(pidsWith(`wireguard-go -f ${IF_B}`)).to.deep.equal(wgPids);
  });

  it("removes a peer, then the interfaces", async function () {
    const r = await backends[0]!.apply(stateA([], false));
    expect(r.changes).to.deep.equal([`peer ${keys.b.publicKey.slice(0, 8)}… removed`]);
    expect(must("wg", ["show", IF_A, "peers"]).trim()).to.equal("");
    expect(ping(NS_A, "10.77.0.2")).to.equal(false);

    await backends[0]!.close(); // leaves it running
    expect(sh("ip", ["-n", NS_A, "link", "show", IF_A]).code).to.equal(0);
    await backends[0]!.close({ remove: true });
    await backends[1]!.close({ remove: true });
    expect(sh("ip", ["-n", NS_A, "link", "show", IF_A]).code).not.to.equal(0);
    expect(sh("ip", ["-n", NS_B, "link", "show", IF_B]).code).not.to.equal(0);
    expect(pidsWith(`wireguard-go -f ${PREFIX}`)).to.deep.equal([]);
    expect(argvSeen.join("\n")).not.to.contain(keys.a.privateKey);
  });
});
