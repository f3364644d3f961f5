// Acceptance 4 of issue 11: PSK-only mode on two wireguard-go interfaces set
// up by plain `wg` commands (no registry, no Scope mesh). `scope psk
// --interface` on both ends rotates PSKs; endpoints and allowed IPs stay as
// the admin set them; a ping running across the rotations loses nothing.

import { expect } from "chai";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, skipUnlessLab } from "./lab.js";
import { LongPing, wgShow } from "./checks.js";
import { SCOPE_CLI } from "./scenario.js";
import { LAB_ENV } from "./netns.js";
import { waitFor } from "./wait.js";
import { WgDevice } from "./wg.js";
import type { World } from "./world.js";

const WORLD: World = {
  routers: [],
  hosts: [
    { name: "po1", v6: false },
    { name: "po2", v6: false },
  ],
};
const ROTATIONS = 3;

describe("lab: PSK-only mode on interfaces set up by wg(8)", function () {
  this.timeout(180_000);
  let lab: Lab | undefined;

  before(async function () {
    skipUnlessLab(this);
    // The lab lock may be held by another run for minutes: waiting for it is no failure.
    this.timeout(1_800_000);
    lab = await Lab.create(WORLD);
  });

  after(async () => {
    await lab?.teardown();
  });

  it("rotates the PSK on both ends, leaves endpoints and allowed IPs alone, and a running ping loses nothing", async function () {
    const l = lab as Lab;
    const a = await WgDevice.start(l, "po1", { listenPort: 51820, address: "10.99.0.1/24" });
    const b = await WgDevice.start(l, "po2", { listenPort: 51821, address: "10.99.0.2/24" });
    await a.setPeer({
      publicKey: b.publicKey,
      endpoint: `${l.publicV4("po2")}:51821`,
      allowedIps: ["10.99.0.2/32"],
      persistentKeepaliveS: 25,
    });
    await b.setPeer({
      publicKey: a.publicKey,
      endpoint: `${l.publicV4("po1")}:51820`,
      allowedIps: ["10.99.0.1/32"],
      persistentKeepaliveS: 25,
    });
    await waitFor(
      async () => (await l.exec("po1", ["ping", "-c1", "-W1", "10.99.0.2"], { allowFail: true })).code === 0,
      { timeoutMs: 20_000, intervalMs: 200, what: "the tunnel up" },
    );
    const show = async (dev: WgDevice, field: string) =>
      [...(await wgShow(l, dev.host, dev.iface, field))].sort();
    const before = {
      a: [await show(a, "endpoints"), await show(a, "allowed-ips")],
      b: [await show(b, "endpoints"), await show(b, "allowed-ips")],
    };

    const logs: string[] = [];
    for (const dev of [a, b]) {
      const dir = join(l.dir, `psk-${dev.host}`);
      mkdirSync(dir, { recursive: true });
      const log = join(dir, "psk.log");
      logs.push(log);
      const fd = openSync(log, "a");
      try {
        l.spawn(
          dev.host,
          [
            process.execPath,
            SCOPE_CLI,
            "psk",
            "--interface",
            dev.iface,
            "--interval",
            "3s",
            "--state-dir",
            dir,
          ],
          { stdio: ["ignore", fd, fd], env: LAB_ENV },
        );
      } finally {
        closeSync(fd);
      }
    }
    const ping = LongPing.start(l, "po1", "10.99.0.2", 20, 0.1);
    const pskOf = async (dev: WgDevice, peer: string) =>
      (await wgShow(l, dev.host, dev.iface, "preshared-keys")).get(peer);
    const seen: string[] = [];
    await waitFor(
      async () => {
        const p = await pskOf(a, b.publicKey);
        if (p && p !== "(none)" && p !== seen.at(-1)) seen.push(p);
        return seen.length >= ROTATIONS;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: `${ROTATIONS} PSKs on po1` },
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${logs.map((f) => readFileSync(f, "utf8")).join("\n")}`);
    });
    const result = await ping.done(60_000);
    expect(result.received, "pings lost across the rotations").to.equal(result.sent);
    // Both ends agree (a rotation in flight finishes within a round trip).
    await waitFor(async () => (await pskOf(a, b.publicKey)) === (await pskOf(b, a.publicKey)), {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: "both ends on the same PSK",
    });
    const after = {
      a: [await show(a, "endpoints"), await show(a, "allowed-ips")],
      b: [await show(b, "endpoints"), await show(b, "allowed-ips")],
    };
    expect(after).to.deep.equal(before);
    expect(new Set(seen).size).to.equal(seen.length);
  });
});
