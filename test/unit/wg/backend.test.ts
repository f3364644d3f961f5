/**
 * The backend against a recording fake host, tailscale TestRouterStates
 * style: each step applies a DesiredState and compares every effect
 * (commands, UAPI requests) and the reported changes with expected text.
 */
import { expect } from "chai";
import type { DesiredState } from "../../../src/core/backend.js";
import { FakeWgHost } from "../../../plugins/wg/fakes.js";
import { createWgBackend, plugin, type WgBackend } from "../../../plugins/wg/index.js";
import {
  captureLogger,
  contextFor,
  hex,
  PEER_B,
  PEER_C,
  PRIVATE_A,
  PSK_1,
  SECRETS,
  SHORT_A,
  peerB,
  peerC,
  stateWith,
  type CapturedLog,
} from "./fixtures.js";

const B = "AgICAgIC…";
const C = "AwMDAwMD…";
const PIDFILE = "/var/lib/scope/corp/wireguard-go-scope0.pid";
const U = "uapi scope0";

interface Step {
  name: string;
  desired: DesiredState;
  /** Expected effects, one per line ("uapi IFACE ..." for socket requests). */
  effects: string;
  changes: string[];
  /** Something WireGuard does on its own before the step (roaming), and the daemon's stats poll. */
  before?: (fake: FakeWgHost, backend: WgBackend) => unknown;
}

type Flavour = "kernel" | "wireguard-go";

function setup(flavour: Flavour): { fake: FakeWgHost; backend: WgBackend; log: CapturedLog } {
  const fake = new FakeWgHost();
  fake.kernelModule = flavour === "kernel";
  const log = captureLogger();
  const backend = createWgBackend(contextFor(log), { runner: fake, host: fake, uapi: fake.transport });
  return { fake, backend, log };
}

const lines = (text: string): string => text.trim().replace(/^ +/gm, "");

/** Fails on any difference, and on any secret in changes, logs or argv. */
async function runSteps(flavour: Flavour, steps: Step[]): Promise<{ fake: FakeWgHost; backend: WgBackend }> {
  const { fake, backend, log } = setup(flavour);
  for (const step of steps) {
    await step.before?.(fake, backend);
    fake.take();
    const result = await backend.apply(step.desired);
    expect(fake.take(), `${step.name}: effects`).to.equal(lines(step.effects));
    expect(result.changes, `${step.name}: changes`).to.deep.equal(step.changes);
  }
  const published = [...log.lines, ...fake.argvs.map((a) => a.join(" "))].join("\n");
  for (const s of SECRETS) expect(published, "a secret in logs or argv").not.to.contain(s);
  return { fake, backend };
}

const withPsk = (): DesiredState => stateWith([{ ...peerB, presharedKey: PSK_1 }, peerC]);

/** The scenario both flavours go through; only the effects differ. */
function scenario(effects: Record<string, string>): Step[] {
  return [
    {
      name: "first apply",
      desired: stateWith([peerB]),
      effects: effects["first apply"]!,
      changes: [
        `interface scope0 created (${effects.flavour})`,
        `interface public key (none) => ${SHORT_A}`,
        "interface listen-port (none) => 51820",
        `peer ${B} added: endpoint 192.0.2.2:51820, allowed-ips 10.88.0.2/32, keepalive off, preshared-key (none)`,
        "interface address + 10.88.0.1/16",
        "interface link up",
      ],
    },
    // The device is not read again: the backend knows what it wrote.
    { name: "identical re-apply", desired: stateWith([peerB]), effects: "", changes: [] },
    {
      // The roam is seen by the stats poll, whose read the next diff uses.
      name: "roamed endpoint, desired endpoint absent",
      before: (fake, backend) => {
        fake.roam("scope0", PEER_B, "198.51.100.7:40000");
        return backend.stats();
      },
      desired: stateWith([{ ...peerB, endpoint: undefined }]),
      effects: "",
      changes: [],
    },
    {
      name: "endpoint change only",
      desired: stateWith([{ ...peerB, endpoint: "192.0.2.22:51820" }]),
      effects: effects["endpoint change"]!,
      changes: [`peer ${B} endpoint 198.51.100.7:40000 => 192.0.2.22:51820`],
    },
    {
      name: "PSK added, peer C added",
      desired: withPsk(),
      effects: effects["psk added"]!,
      changes: [
        `peer ${B} endpoint 192.0.2.22:51820 => 192.0.2.2:51820`,
        `peer ${B} preshared-key (none) => (new)`,
        `peer ${C} added: endpoint [2001:db8::3]:51820, allowed-ips 10.88.0.3/32,fd88::3/128, keepalive 25s, preshared-key (none)`,
      ],
    },
    { name: "re-apply with PSK", desired: withPsk(), effects: "", changes: [] },
    {
      name: "allowed-ips change",
      desired: stateWith([{ ...peerB, presharedKey: PSK_1, allowedIps: ["10.88.0.0/16"] }, peerC]),
      effects: effects["allowed-ips"]!,
      changes: [`peer ${B} allowed-ips 10.88.0.2/32 => 10.88.0.0/16`],
    },
    {
      name: "peer removed",
      desired: stateWith([peerC]),
      effects: effects["peer removed"]!,
      changes: [`peer ${B} removed`],
    },
    {
      // The link is read again only when its desired half changes.
      name: "tunnel address changed",
      desired: stateWith([peerC], { addresses: ["10.88.0.9/16"] }),
      effects: `
        ip -j address show dev scope0
        ip address del 10.88.0.1/16 dev scope0
        ip address add 10.88.0.9/16 dev scope0`,
      changes: ["interface address - 10.88.0.1/16", "interface address + 10.88.0.9/16"],
    },
  ];
}

describe("wg backend: wireguard-go states", () => {
  it("reconciles a sequence of desired states with minimal UAPI sets", async () => {
    await runSteps(
      "wireguard-go",
      scenario({
        flavour: "wireguard-go",
        "first apply": `
          ${U} get=1 (no socket)
          spawn wireguard-go -f scope0
          write ${PIDFILE}
          ${U} get=1
          ${U} get=1
          ${U} set=1
          private_key=${hex(PRIVATE_A)}
          listen_port=51820
          public_key=${hex(PEER_B)}
          endpoint=192.0.2.2:51820
          replace_allowed_ips=true
          allowed_ip=10.88.0.2/32
          ip -j address show dev scope0
          ip address add 10.88.0.1/16 dev scope0
          ip link set dev scope0 up`,
        "endpoint change": `
          ${U} set=1
          public_key=${hex(PEER_B)}
          update_only=true
          endpoint=192.0.2.22:51820`,
        "psk added": `
          ${U} set=1
          public_key=${hex(PEER_C)}
          endpoint=[2001:db8::3]:51820
          persistent_keepalive_interval=25
          replace_allowed_ips=true
          allowed_ip=10.88.0.3/32
          allowed_ip=fd88::3/128
          public_key=${hex(PEER_B)}
          update_only=true
          endpoint=192.0.2.2:51820
          preshared_key=${hex(PSK_1)}`,
        "allowed-ips": `
          ${U} set=1
          public_key=${hex(PEER_B)}
          update_only=true
          replace_allowed_ips=true
          allowed_ip=10.88.0.0/16`,
        "peer removed": `
          ${U} set=1
          public_key=${hex(PEER_B)}
          remove=true`,
      }),
    );
  });

  it("reuses a live wireguard-go instead of starting a second one", async () => {
    const { fake, backend } = setup("wireguard-go");
    await backend.apply(stateWith([peerB]));
    // A restarted daemon: new backend, same host, the interface is still there.
    const again = createWgBackend(contextFor(captureLogger()), {
      runner: fake,
      host: fake,
      uapi: fake.transport,
    });
    fake.take();
    expect((await again.apply(stateWith([peerB]))).changes).to.deep.equal([]);
    expect(fake.take()).not.to.contain("spawn");
  });

  it("adding one peer to a known device is one set of that peer, no read", async () => {
    const { fake, backend } = setup("wireguard-go");
    const many = Array.from({ length: 50 }, (_, i) => ({
      publicKey: Buffer.alloc(32, 0x40 + i).toString("base64"),
      allowedIps: [`10.88.1.${i + 1}/32`],
    }));
    await backend.apply(stateWith(many));
    fake.take();
    await backend.apply(stateWith([...many, peerB]));
    expect(fake.take()).to.equal(
      lines(`
        ${U} set=1
        public_key=${hex(PEER_B)}
        endpoint=192.0.2.2:51820
        replace_allowed_ips=true
        allowed_ip=10.88.0.2/32`),
    );
  });

  it("a write that fails against the known device (wireguard-go gone) reads and starts it again", async () => {
    const { fake, backend } = setup("wireguard-go");
    await backend.apply(stateWith([peerB]));
    fake.wireguard.delete("scope0");
    fake.links.delete("scope0");
    fake.take();
    const r = await backend.apply(stateWith([peerB, peerC]));
    expect(r.created).to.equal(true);
    expect(fake.take().split("\n").slice(0, 4)).to.deep.equal([
      `${U} set=1`,
      `public_key=${hex(PEER_C)}`,
      `endpoint=[2001:db8::3]:51820`,
      `persistent_keepalive_interval=25`,
    ]);
    expect((await backend.stats()).map((s) => s.publicKey)).to.deep.equal([PEER_B, PEER_C]);
  });

  it("a peer removed behind its back is added again by the apply after a stats poll", async () => {
    const { fake, backend } = setup("wireguard-go");
    await backend.apply(stateWith([peerB, peerC]));
    fake.devices.get("scope0")!.peers.delete(PEER_B);
    await backend.stats();
    const r = await backend.apply(stateWith([peerB, peerC]));
    expect(r.changes).to.deep.equal([
      `peer ${B} added: endpoint 192.0.2.2:51820, allowed-ips 10.88.0.2/32, keepalive off, preshared-key (none)`,
    ]);
  });

  it("addresses: adds missing, removes extra, sets the MTU", async () => {
    const { fake, backend } = setup("wireguard-go");
    await backend.apply(stateWith([]));
    fake.links.get("scope0")!.addresses.push("10.99.0.1/24");
    fake.take();
    const r = await backend.apply(stateWith([], { addresses: ["10.88.0.1/16", "fd88::1/64"], mtu: 1380 }));
    expect(r.changes).to.deep.equal([
      "interface mtu 1420 => 1380",
      "interface address - 10.99.0.1/24",
      "interface address + fd88::1/64",
    ]);
    expect(fake.take()).to.equal(
      lines(`
        ip -j address show dev scope0
        ip link set dev scope0 mtu 1380
        ip address del 10.99.0.1/24 dev scope0
        ip address add fd88::1/64 dev scope0`),
    );
  });

  it("triggerHandshake leaves a peer alone that completed a handshake the caller has not seen", async () => {
    const { fake, backend, log } = setup("wireguard-go");
    await backend.apply(stateWith([peerB]));
    fake.handshake("scope0", PEER_B, 1_000);
    fake.take();
    // A handshake at 1000 s: the caller who saw one at 999 s has not seen it; the one who saw it still gets the trigger.
    await backend.triggerHandshake(PEER_B, 999_000);
    expect(fake.take()).to.equal(`${U} get=1`);
    expect(log.lines.join("\n")).to.include("handshake trigger skipped, fresh handshake");
    await backend.triggerHandshake(PEER_B, 1_000_000);
    expect(fake.take()).to.include("remove=true");
  });

  it("triggerHandshake re-adds the peer with its roamed endpoint and keepalive on", async () => {
    const { fake, backend } = setup("wireguard-go");
    await backend.apply(stateWith([{ ...peerB, presharedKey: PSK_1 }]));
    fake.roam("scope0", PEER_B, "198.51.100.7:40000");
    fake.take();
    await backend.triggerHandshake(PEER_B);
    expect(fake.take()).to.equal(
      lines(`
        ${U} get=1
        ${U} set=1
        public_key=${hex(PEER_B)}
        remove=true
        public_key=${hex(PEER_B)}
        preshared_key=${hex(PSK_1)}
        endpoint=198.51.100.7:40000
        persistent_keepalive_interval=1
        replace_allowed_ips=true
        allowed_ip=10.88.0.2/32
        public_key=${hex(PEER_B)}
        update_only=true
        persistent_keepalive_interval=0`),
    );
    // The peer's config is unchanged afterwards: the next apply sends nothing.
    expect(
      (await backend.apply(stateWith([{ ...peerB, presharedKey: PSK_1, endpoint: undefined }]))).changes,
    ).to.deep.equal([]);
  });

  it("close() leaves the tunnel; close({remove}) deletes the link and the pid file", async () => {
    const { fake, backend } = setup("wireguard-go");
    await backend.apply(stateWith([peerB]));
    fake.take();
    await backend.close();
    expect(fake.take()).to.equal("");
    await backend.close({ remove: true });
    expect(fake.take()).to.equal(
      lines(`
        ip link del dev scope0
        ${U} get=1 (no socket)
        rm ${PIDFILE}`),
    );
    expect(await backend.stats()).to.deep.equal([]);
  });

  it("stats report endpoint, handshake time and counters", async () => {
    const { fake, backend } = setup("wireguard-go");
    await backend.apply(stateWith([peerB]));
    const peer = fake.devices.get("scope0")!.peers.get(PEER_B)!;
    Object.assign(peer, { handshakeSec: 1700000000, rx: 92, tx: 148 });
    expect(await backend.stats()).to.deep.equal([
      {
        publicKey: PEER_B,
        endpoint: "192.0.2.2:51820",
        lastHandshakeMs: 1700000000000,
        rxBytes: 92,
        txBytes: 148,
      },
    ]);
  });
});

describe("wg backend: kernel states", () => {
  const W = "wg set scope0";
  it("reconciles the same sequence with wg(8), secrets only on stdin", async () => {
    const { backend, fake } = await runSteps(
      "kernel",
      scenario({
        flavour: "kernel",
        "first apply": `
          wg show scope0 dump
          ip link add dev scope0 type wireguard
          wg show scope0 dump
          ${W} private-key /dev/stdin <stdin>
          ${W} listen-port 51820 peer ${PEER_B} endpoint 192.0.2.2:51820 allowed-ips 10.88.0.2/32
          ip -j address show dev scope0
          ip address add 10.88.0.1/16 dev scope0
          ip link set dev scope0 up`,
        "endpoint change": `
          ${W} peer ${PEER_B} endpoint 192.0.2.22:51820`,
        "psk added": `
          ${W} peer ${PEER_B} preshared-key /dev/stdin <stdin>
          ${W} peer ${PEER_B} endpoint 192.0.2.2:51820 peer ${PEER_C} endpoint [2001:db8::3]:51820 persistent-keepalive 25 allowed-ips 10.88.0.3/32,fd88::3/128`,
        "allowed-ips": `
          ${W} peer ${PEER_B} allowed-ips 10.88.0.0/16`,
        "peer removed": `
          ${W} peer ${PEER_B} remove`,
      }),
    );
    fake.take();
    await backend.triggerHandshake(PEER_C);
    expect(fake.take()).to.equal(
      lines(`
        wg show scope0 dump
        ${W} peer ${PEER_C} remove peer ${PEER_C} endpoint [2001:db8::3]:51820 persistent-keepalive 25 allowed-ips 10.88.0.3/32,fd88::3/128`),
    );
  });
});

describe("wg backend: plugin and probe", () => {
  it("exports a BackendPlugin named wg", () => {
    expect(plugin.name).to.equal("wg");
    expect(plugin.apiVersion).to.equal(1);
  });

  it("probe prefers the kernel module, falls back to wireguard-go", async () => {
    expect(await setup("kernel").backend.probe()).to.deep.equal({ usable: true, detail: "kernel" });
    expect(await setup("wireguard-go").backend.probe()).to.deep.equal({
      usable: true,
      detail: "wireguard-go",
    });
  });

  it("rejects bad interface names and malformed input as config errors, before any effect", async () => {
    const { fake, backend } = setup("wireguard-go");
    for (const bad of [
      stateWith([], { name: "a/b" }),
      stateWith([], { name: "x".repeat(16) }),
      stateWith([{ ...peerB, endpoint: "host:1" }]),
    ]) {
      try {
        await backend.apply(bad);
        expect.fail("no throw");
      } catch (err) {
        expect((err as { code?: string }).code).to.equal("config");
      }
    }
    expect(fake.log).to.deep.equal([]);
  });
});
