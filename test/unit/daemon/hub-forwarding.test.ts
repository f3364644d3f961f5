/**
 * What a hub changes on its host (src/daemon/hub-forwarding.ts), recorded
 * against a fake nft and fake sysctls: only the interface's forwarding
 * sysctls, one tagged accept rule per forward-hook chain, all undone.
 */
import { expect } from "chai";
import type { CommandRunner, RunResult } from "../../../src/exec.js";
import { HostHubForwarding, type SysctlIO } from "../../../src/daemon/hub-forwarding.js";
import { silentLogger } from "../../../src/core/logger.js";

const IFACE = "scope0";
const V4 = `/proc/sys/net/ipv4/conf/${IFACE}/forwarding`;
const V6 = `/proc/sys/net/ipv6/conf/${IFACE}/forwarding`;

/** A host: sysctl files and an nftables ruleset that `nft insert/delete rule` edit. */
function fakeHost(forwardChains: { family: string; table: string; name: string }[]) {
  const files = new Map<string, string>([
    [V4, "0"],
    [V6, "0"],
    ["/proc/sys/net/ipv4/ip_forward", "0"],
  ]);
  const rules: { family: string; table: string; chain: string; handle: number; comment?: string }[] = [];
  let handle = 10;
  const calls: string[] = [];
  const sysctl: SysctlIO = {
    read: async (p) => files.get(p),
    write: async (p, v) => void files.set(p, v),
  };
  const runner: CommandRunner = {
    async run(cmd, args): Promise<RunResult> {
      calls.push([cmd, ...args].join(" "));
      if (args[0] === "-j") {
        const nftables = [
          ...forwardChains.map((c) => ({ chain: { ...c, hook: "forward", type: "filter" } })),
          { chain: { family: "inet", table: "x", name: "input", hook: "input" } },
          ...rules.map((r) => ({ rule: r })),
        ];
        return { code: 0, stdout: JSON.stringify({ nftables }), stderr: "" };
      }
      const [verb, , family = "", table = "", chain = ""] = args;
      if (verb === "insert") {
        const comment = args[args.indexOf("comment") + 1]?.replace(/"/g, "");
        rules.push({ family, table, chain, handle: handle++, ...(comment ? { comment } : {}) });
      } else if (verb === "delete") {
        const h = Number(args[args.length - 1]);
        rules.splice(
          rules.findIndex((r) => r.handle === h),
          1,
        );
      }
      return { code: 0, stdout: "", stderr: "" };
    },
  };
  return { files, rules, calls, sysctl, runner };
}

describe("hub forwarding on the host", () => {
  it("sets only the interface's forwarding sysctls and adds one tagged rule per forward chain; disable undoes both", async () => {
    const h = fakeHost([{ family: "inet", table: "filter", name: "forward" }]);
    const hf = new HostHubForwarding(h.runner, silentLogger, h.sysctl);
    await hf.enable(IFACE);
    expect([h.files.get(V4), h.files.get(V6), h.files.get("/proc/sys/net/ipv4/ip_forward")]).to.deep.equal([
      "1",
      "1",
      "0",
    ]);
    expect(h.rules.map((r) => `${r.family} ${r.table} ${r.chain} ${r.comment}`)).to.deep.equal([
      `inet filter forward scope hub ${IFACE}`,
    ]);
    expect(h.calls.find((c) => c.startsWith("nft insert"))).to.equal(
      `nft insert rule inet filter forward iifname ${IFACE} oifname ${IFACE} accept comment "scope hub ${IFACE}"`,
    );
    await hf.enable(IFACE); // a second enable (daemon restart) adds nothing
    expect(h.rules).to.have.length(1);
    await hf.disable(IFACE);
    expect([h.files.get(V4), h.files.get(V6)]).to.deep.equal(["0", "0"]);
    expect(h.rules).to.deep.equal([]);
  });

  it("adds no rule where no chain filters forwarding, and removes a rule a crashed daemon left", async () => {
    const h = fakeHost([]);
    await new HostHubForwarding(h.runner, silentLogger, h.sysctl).enable(IFACE);
    expect(h.calls.filter((c) => c.startsWith("nft insert"))).to.deep.equal([]);
    h.rules.push({ family: "ip", table: "t", chain: "fwd", handle: 3, comment: `scope hub ${IFACE}` });
    h.rules.push({ family: "ip", table: "t", chain: "fwd", handle: 4, comment: "the admin's" });
    await new HostHubForwarding(h.runner, silentLogger, h.sysctl).disable(IFACE);
    expect(h.rules.map((r) => r.comment)).to.deep.equal(["the admin's"]);
  });
});
