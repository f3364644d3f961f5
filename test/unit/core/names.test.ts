/**
 * src/core/names.ts: one rule for network names and one for interface
 * names, and every place that checks a name uses it (protocol, config,
 * networkd).
 */
import { expect } from "chai";
import { EdgeConfig } from "../../../src/config/schema.js";
import {
  checkInterfaceName,
  checkNetworkName,
  isInterfaceName,
  isNetworkName,
} from "../../../src/core/names.js";
import { NetworkName } from "../../../src/core/protocol.js";
import { checkNetworkName as networkdNetworkName } from "../../../networkd/model.js";
import { checkIfname } from "../../../networkd/values.js";

// [name, valid network name, valid interface name, why]
const TABLE: [string, boolean, boolean, string][] = [
  ["corp", true, true, "plain"],
  ["corp-eu", true, true, "dash (a unit instance keeps it with %i)"],
  ["lab-1", true, true, "digits and dash"],
  ["0corp", true, true, "may start with a digit"],
  ["a", true, true, "one character"],
  ["abcdefghijklmno", true, true, "15 bytes: IFNAMSIZ - 1"],
  ["abcdefghijklmnop", false, false, "16 bytes: too long for IFNAMSIZ"],
  ["", false, false, "empty"],
  ["-corp", false, true, "a leading dash would read as an option on argv"],
  ["Corp", false, true, "network names are lower case; interfaces may be mixed"],
  ["corp_eu", false, true, "underscore: fine for Linux and networkd"],
  ["corp.eu", false, true, "dot: our file-name separator (50-scope-NET.netdev)"],
  ["wg@corp", false, true, "@ is a legal interface character"],
  ["123", false, false, "all digits: systemd reads an ifindex"],
  ["all", false, false, "/proc/sys/net/ipv4/conf/all"],
  ["default", false, false, "/proc/sys/net/ipv4/conf/default"],
  [".", false, false, "sysfs path component"],
  ["..", false, false, "sysfs path component"],
  ["a/b", false, false, "slash: sysfs paths, the UAPI socket path"],
  ["a:b", false, false, "colon: legacy alias interfaces"],
  ["a%d", false, false, "percent: the kernel's name%d template"],
  ["a b", false, false, "space"],
  ["a\tb", false, false, "tab"],
  ["a*b", false, false, "glob in networkd's [Match] Name="],
  ["a?b", false, false, "glob in networkd's [Match] Name="],
  ["a[0]", false, false, "glob in networkd's [Match] Name="],
  ["!a", false, false, "negation in networkd's [Match] Name="],
  ['a"b', false, false, "quote in networkd's [Match] Name="],
  ["a\\b", false, false, "backslash: escape in networkd's [Match] Name="],
  ["é", false, false, "non-ASCII: systemd refuses bytes >= 127"],
  ["a\u007f", false, false, "DEL"],
];

describe("core names: one rule each for network and interface names", () => {
  for (const [name, network, iface, why] of TABLE) {
    it(`${JSON.stringify(name)}: network ${network ? "yes" : "no"}, interface ${iface ? "yes" : "no"} (${why})`, () => {
      expect(isNetworkName(name), "isNetworkName").to.equal(network);
      expect(checkNetworkName(name) === undefined, "checkNetworkName").to.equal(network);
      expect(isInterfaceName(name), "isInterfaceName").to.equal(iface);
      // The users of the rules agree with them.
      expect(NetworkName.safeParse(name).success, "protocol NetworkName").to.equal(network);
      expect(networkdNetworkName(name) === undefined, "networkd checkNetworkName").to.equal(network);
      expect(checkIfname(name) === undefined, "networkd checkIfname").to.equal(iface);
      const config = EdgeConfig.safeParse({
        registry: { url: "https://reg:8470" },
        network: { name: network ? name : "corp" },
        identity: { key_file: "/k" },
        wireguard: { interface: name, private_key_file: "/p" },
      });
      expect(config.success, "EdgeConfig wireguard.interface").to.equal(iface);
    });
  }

  it("says what is wrong", () => {
    expect(checkInterfaceName("x".repeat(16))).to.equal("interface names are 1 to 15 bytes");
    expect(checkInterfaceName("all")).to.match(/reserved/);
    expect(checkNetworkName("a/b")).to.match(/^network name "a\/b" must be 1-15 of a-z 0-9 -/);
  });

  it("every network name also works as a file name, unit instance, URL segment and interface name", () => {
    const alphabet = "abcz09-._/A@";
    let x = 12345; // a fixed LCG: the same names every run
    const next = (n: number): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n;
    let valid = 0;
    for (let n = 0; n < 20000; n++) {
      let s = "";
      for (let i = 0, len = 1 + next(17); i < len; i++) s += alphabet[next(alphabet.length)];
      if (!isNetworkName(s)) continue;
      valid++;
      expect(isInterfaceName(s), s).to.equal(true);
      expect(encodeURIComponent(s), s).to.equal(s);
      expect(s, s).to.match(/^[A-Za-z0-9:_.\\-]+$/); // systemd unit-name characters
      expect(s).not.to.include(".");
      expect(s.startsWith("-")).to.equal(false);
    }
    expect(valid).to.be.above(100);
  });
});
