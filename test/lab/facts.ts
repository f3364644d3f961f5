// Measures the timing facts docs/lab.md quotes, so they can be re-checked on
// another kernel or wireguard-go version:   node dist/test/lab/facts.js
// Prints one line per fact; not a test (no pass/fail), like bench/.

import { Lab, labUnavailable } from "./lab.js";
import { endpoint } from "./udp.js";
import { waitFor } from "./wait.js";
import { WgDevice } from "./wg.js";
import type { World } from "./world.js";

const WORLD: World = {
  routers: [
    { name: "na", nat: "port-restricted" },
    { name: "nb", nat: "port-restricted" },
  ],
  hosts: [{ name: "a", router: "na" }, { name: "b", router: "nb" }, { name: "p" }],
};

async function main(): Promise<void> {
  const why = labUnavailable();
  if (why !== undefined) throw new Error(why);
  let t = Date.now();
  const lab = await Lab.create(WORLD);
  console.log(`build: ${Date.now() - t} ms for 3 routers+internet namespaces and 3 hosts`);
  try {
    const tunnelUp = (from: string, to: string, timeoutMs = 20_000): Promise<boolean> =>
      waitFor(
        () => lab.exec(from, ["ping", "-c1", "-W1", to], { allowFail: true }).then((r) => r.code === 0),
        {
          timeoutMs,
          intervalMs: 0,
          what: `ping ${from} -> ${to}`,
        },
      );
    let port = 51000;
    const pair = async (x: string, y: string): Promise<[WgDevice, WgDevice, string, string]> => {
      const px = port++;
      const py = port++;
      const dx = await WgDevice.start(lab, x, {
        iface: `sl-${x}${px}`,
        listenPort: px,
        address: "10.99.0.1/24",
      });
      const dy = await WgDevice.start(lab, y, {
        iface: `sl-${y}${py}`,
        listenPort: py,
        address: "10.99.0.2/24",
      });
      return [dx, dy, endpoint(lab.publicV4(x), px), endpoint(lab.publicV4(y), py)];
    };

    // 1. Both NATed sides configured, then both send.
    {
      const [a, b, ea, eb] = await pair("a", "b");
      await a.setPeer({ publicKey: b.publicKey, endpoint: eb, allowedIps: ["10.99.0.2/32"] });
      await b.setPeer({ publicKey: a.publicKey, endpoint: ea, allowedIps: ["10.99.0.1/32"] });
      t = Date.now();
      await Promise.all([tunnelUp("a", "10.99.0.2"), tunnelUp("b", "10.99.0.1")]);
      console.log(`wg both NATed, both send: tunnel up after ${Date.now() - t} ms`);
      a.stop();
      b.stop();
    }
    // 2. Only one NATed side sends: its handshakes die at the other NAT
    //    until the other side sends too.
    {
      const [a, b, ea, eb] = await pair("a", "b");
      await a.setPeer({ publicKey: b.publicKey, endpoint: eb, allowedIps: ["10.99.0.2/32"] });
      await b.setPeer({ publicKey: a.publicKey, endpoint: ea, allowedIps: ["10.99.0.1/32"] });
      const alone = await tunnelUp("a", "10.99.0.2", 7000).catch(() => false);
      t = Date.now();
      await tunnelUp("b", "10.99.0.1");
      console.log(
        `wg one side sends for 7 s: up=${alone}; after the other sends too: up in ${Date.now() - t} ms`,
      );
      a.stop();
      b.stop();
    }
    // 3. NATed side initiates toward a public peer that adds it 1 s late:
    //    the first handshake is dropped and retried after REKEY_TIMEOUT (5 s).
    {
      const [a, p, , ep] = await pair("a", "p");
      await a.setPeer({ publicKey: p.publicKey, endpoint: ep, allowedIps: ["10.99.0.2/32"] });
      t = Date.now();
      const up = tunnelUp("a", "10.99.0.2");
      await new Promise((r) => setTimeout(r, 1000)); // the delay is the experiment, not a wait
      await p.setPeer({ publicKey: a.publicKey, allowedIps: ["10.99.0.1/32"] });
      await up;
      console.log(`wg receiver learns the peer 1 s late: tunnel up after ${Date.now() - t} ms`);
      const seen = (await p.endpoints()).get(a.publicKey);
      console.log(
        `wg public peer sees the NATed peer at ${seen ?? "(none)"} (router WAN ${lab.publicV4("a")})`,
      );
      a.stop();
      p.stop();
    }
  } finally {
    t = Date.now();
    await lab.teardown();
    console.log(`teardown: ${Date.now() - t} ms`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
