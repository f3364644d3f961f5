/**
 * /metrics lists every network and its size: it is served on its own
 * listener (metrics_listen, loopback by default), not on the API port.
 */
import { expect } from "chai";
import { memberClient, newPeer, startRegistryProcess, type RegistryProcess } from "./harness.js";

describe("registry: /metrics apart from the API port (real process)", function () {
  this.timeout(30_000);
  let reg: RegistryProcess;

  before(async () => {
    reg = await startRegistryProcess();
    await reg.admin.createNetwork({ name: "secretnet", cidr: "10.77.0.0/16" });
    const { token } = await reg.admin.createToken("secretnet", {});
    const p = newPeer();
    await memberClient(reg, "secretnet", p.identity).join(token, p.input);
  });
  after(async () => reg?.dispose());

  it("answers 404 JSON on the API port and the Prometheus text on metrics_listen", async () => {
    const pub = await fetch(`${reg.url}/metrics`);
    expect(pub.status).to.equal(404);
    expect(await pub.text()).to.not.include("secretnet");

    const where = / metrics=([0-9.]+:\d+)/.exec(reg.output())?.[1];
    if (!where) throw new Error(`no metrics address in the log:\n${reg.output()}`);
    const m = await fetch(`http://${where}/metrics`);
    expect(m.status).to.equal(200);
    expect(await m.text()).to.include('scope_registry_peers{network="secretnet"} 1');
  });
});
