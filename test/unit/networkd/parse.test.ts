import { expect } from "chai";
import type { NetdevConfig } from "../../../networkd/model.js";
import { UnitFileError, parseNetdev, parseNetwork, parseUnitFile } from "../../../networkd/parse.js";
import { formatNetdev, netdevModel, networkModel } from "../../../networkd/render.js";
import { ALICE, BOB, alice, bob, hub, mesh } from "./fixtures.js";
import { readGolden } from "./golden.js";
import { prng } from "../prng.js";

const problems = (text: string, parse = parseNetdev): string[] => {
  try {
    parse(text, "t.netdev");
  } catch (e) {
    if (e instanceof UnitFileError) return e.problems;
    throw e;
  }
  return [];
};

const HEAD = "[NetDev]\nName=scope0\nKind=wireguard\n";

describe("networkd parseUnitFile", () => {
  it("follows systemd.syntax(7): comments, blank lines, continuations, repeated sections", () => {
    const text = [
      "# comment",
      "; also a comment",
      "[A]",
      "  Key = spaced value  ",
      "Long=one \\",
      "# skipped inside a continuation",
      "two",
      "",
      "[B]",
      "X=1",
      "[B]",
      "X=2",
      "Empty=",
    ].join("\n");
    expect(parseUnitFile(text)).to.deep.equal([
      {
        name: "A",
        line: 3,
        entries: [
          { key: "Key", value: "spaced value", line: 4 },
          { key: "Long", value: "one  two", line: 5 },
        ],
      },
      { name: "B", line: 9, entries: [{ key: "X", value: "1", line: 10 }] },
      {
        name: "B",
        line: 11,
        entries: [
          { key: "X", value: "2", line: 12 },
          { key: "Empty", value: "", line: 13 },
        ],
      },
    ]);
  });

  it("reports every syntax problem with file and line", () => {
    expect(
      problems("Key=outside\n[Ok]\nnonsense\n[Bad\n", (t, f) => parseUnitFile(t, f) as never),
    ).to.deep.equal([
      "t.netdev:1: assignment outside of any [Section]",
      't.netdev:3: expected Key=Value, got "nonsense"',
      't.netdev:4: malformed section header "[Bad"',
    ]);
  });
});

describe("networkd parseNetdev", () => {
  it("reads the golden mesh back into the model it was rendered from", () => {
    const d = mesh([bob, hub, alice], { mtu: 1420 });
    expect(parseNetdev(readGolden("mesh.netdev")).config).to.deep.equal(netdevModel(d, { network: "corp" }));
    expect(parseNetwork(readGolden("mesh.network")).config).to.deep.equal(
      networkModel(d, { network: "corp" }),
    );
  });

  it("treats duplicates as systemd does: later scalar wins, AllowedIPs accumulate, empty resets", () => {
    const text =
      HEAD +
      "[WireGuard]\nListenPort=1\nListenPort=2\n[NetDev]\nMTUBytes=1K\n" +
      `[WireGuardPeer]\nPublicKey=${ALICE}\nAllowedIPs=10.0.0.1/32, 10.0.0.2/32\nAllowedIPs=\nAllowedIPs=10.0.0.3 fd00::/8\n` +
      "Endpoint=192.0.2.1:1\nEndpoint=\nPersistentKeepalive=off\n";
    expect(parseNetdev(text).config).to.deep.equal({
      name: "scope0",
      kind: "wireguard",
      listenPort: 2,
      mtuBytes: 1024,
      peers: [{ publicKey: ALICE, allowedIps: ["10.0.0.3", "fd00::/8"] }],
    });
  });

  it("accepts odd but valid values", () => {
    const text =
      HEAD +
      "[WireGuard]\nListenPort=auto\nRouteTable=off\nFirewallMark=4294967295\n" +
      `[WireGuardPeer]\nPublicKey=${ALICE}\nEndpoint=[fe80::1%eth0]:65535\nAllowedIPs=10.1.2.3/8,::/0\nPersistentKeepalive=65535\n` +
      `[WireGuardPeer]\nPublicKey=${BOB}\nEndpoint=vpn-1.example.com.:1\nPersistentKeepalive=0\n[X-Scope]\nAnything=goes\n`;
    const { config, warnings } = parseNetdev(text);
    expect(config.listenPort).to.equal(undefined);
    expect(config.peers.map((p) => p.endpoint)).to.deep.equal([
      "[fe80::1%eth0]:65535",
      "vpn-1.example.com.:1",
    ]);
    expect(config.peers[1]!.persistentKeepalive).to.equal(undefined);
    expect(warnings).to.deep.equal([]);
  });

  it("warns, like networkd, on unknown keys and sections, and on inline secrets", () => {
    const { warnings } = parseNetdev(
      HEAD + `MACAddress=none\n[Bridge]\n[WireGuard]\nPrivateKey=${ALICE}\n`,
      "t.netdev",
    );
    expect(warnings).to.deep.equal([
      "t.netdev:4: unknown key MACAddress= in [NetDev], networkd ignores it",
      "t.netdev:5: unknown section [Bridge], networkd ignores it",
      "t.netdev:7: PrivateKey= puts a secret in the unit file; Scope writes PrivateKeyFile= instead",
    ]);
  });

  const invalid: [string, string, string][] = [
    ["short key", `[WireGuardPeer]\nPublicKey=abc=`, "t.netdev:5: PublicKey=: not a WireGuard key"],
    // 32 bytes need the 43rd character to have its two low bits clear: "B" encodes different bits.
    [
      "non-canonical key",
      `[WireGuardPeer]\nPublicKey=${ALICE.slice(0, 42)}B=`,
      "t.netdev:5: PublicKey=: not a WireGuard key",
    ],
    ["credential key", `[WireGuardPeer]\nPublicKey=@wg.pub`, "t.netdev:5: PublicKey=: systemd credentials"],
    ["port 0", "[WireGuard]\nListenPort=0", 't.netdev:5: ListenPort=0: not a port (1..65535) or "auto"'],
    ["port 65536", "[WireGuard]\nListenPort=65536", "t.netdev:5: ListenPort=65536"],
    [
      "prefix /33",
      `[WireGuardPeer]\nPublicKey=${ALICE}\nAllowedIPs=10.0.0.0/33`,
      't.netdev:6: AllowedIPs=: "10.0.0.0/33"',
    ],
    [
      "prefix /129",
      `[WireGuardPeer]\nPublicKey=${ALICE}\nAllowedIPs=::/129`,
      't.netdev:6: AllowedIPs=: "::/129"',
    ],
    [
      "endpoint without port",
      `[WireGuardPeer]\nPublicKey=${ALICE}\nEndpoint=192.0.2.1`,
      "t.netdev:6: Endpoint=: endpoint",
    ],
    // Leading zeros: octal to inet_aton, refused by the one IP module (src/core/ip.ts), also as a "host name".
    [
      "a leading zero in an allowed IP",
      `[WireGuardPeer]\nPublicKey=${ALICE}\nAllowedIPs=010.0.0.1/32`,
      't.netdev:6: AllowedIPs=: "010.0.0.1/32"',
    ],
    [
      "a leading zero in an endpoint",
      `[WireGuardPeer]\nPublicKey=${ALICE}\nEndpoint=010.1.1.1:51820`,
      "neither an IP address nor a host name",
    ],
    ["bare IPv6 endpoint", `[WireGuardPeer]\nPublicKey=${ALICE}\nEndpoint=2001:db8::1:51820`, "brackets"],
    ["endpoint port 0", `[WireGuardPeer]\nPublicKey=${ALICE}\nEndpoint=[::1]:0`, "no valid port"],
    [
      "bad host",
      `[WireGuardPeer]\nPublicKey=${ALICE}\nEndpoint=bad_-.host!:1`,
      "neither an IP address nor a host name",
    ],
    [
      "keepalive 65536",
      `[WireGuardPeer]\nPublicKey=${ALICE}\nPersistentKeepalive=65536`,
      'not 0..65535 or "off"',
    ],
    ["keepalive -1", `[WireGuardPeer]\nPublicKey=${ALICE}\nPersistentKeepalive=-1`, "PersistentKeepalive=-1"],
    [
      "relative key file",
      "[WireGuard]\nPrivateKeyFile=wg.key",
      "t.netdev:5: PrivateKeyFile=: not an absolute path",
    ],
    [
      "peer without key",
      "[WireGuardPeer]\nAllowedIPs=10.0.0.1/32",
      "t.netdev:4: [WireGuardPeer] without PublicKey=",
    ],
    [
      "same peer twice",
      `[WireGuardPeer]\nPublicKey=${ALICE}\n[WireGuardPeer]\nPublicKey=${ALICE}`,
      "already defined at line 4",
    ],
    ["long name", "[NetDev]\nName=sixteen-bytes-xx", "t.netdev:5: Name=: interface names are 1 to 15 bytes"],
  ];
  for (const [what, body, want] of invalid)
    it(`rejects ${what}`, () => expect(problems(HEAD + body).join("\n")).to.contain(want));

  it("requires Name= and Kind=wireguard, and lists all problems at once", () => {
    expect(problems("[NetDev]\nKind=bridge\n[WireGuard]\nListenPort=x\n")).to.deep.equal([
      't.netdev:4: ListenPort=x: not a port (1..65535) or "auto"',
      "t.netdev:1: [NetDev] Name= is required",
      "t.netdev:1: Kind=bridge: only wireguard netdevs are read here",
    ]);
  });
});

function randomModel(rand: () => number): NetdevConfig {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const maybe = <T>(v: () => T): T | undefined => (rand() < 0.5 ? v() : undefined);
  const key = () => Buffer.from(Array.from({ length: 32 }, () => int(256))).toString("base64");
  const v4 = () => Array.from({ length: 4 }, () => int(256)).join(".");
  const v6 = () => pick(["::", "::1", "fd8a::5", "2001:db8:0:0:1::7", "fe80::1", "::ffff:10.0.0.1"]);
  const cidr = () => (rand() < 0.6 ? `${v4()}/${int(33)}` : rand() < 0.5 ? `${v6()}/${int(129)}` : v4());
  const endpoint = () =>
    pick([
      `${v4()}:${1 + int(65535)}`,
      `[${v6()}]:${1 + int(65535)}`,
      `peer${int(99)}.example.net:${1 + int(65535)}`,
      `[fe80::1%eth${int(3)}]:1`,
    ]);
  const opt = <K extends string, V>(k: K, v: V | undefined) =>
    v === undefined ? {} : ({ [k]: v } as Record<K, V>);
  const peers = Array.from({ length: int(12) }, () => ({
    publicKey: key(),
    ...opt(
      "presharedKeyFile",
      maybe(() => `/etc/systemd/network/50-scope-x.peer-${int(1e6)}.psk`),
    ),
    ...opt("endpoint", maybe(endpoint)),
    ...opt(
      "persistentKeepalive",
      maybe(() => 1 + int(65535)),
    ),
    ...opt(
      "routeTable",
      maybe(() => pick(["off", "main", "1234", "vpn_table"])),
    ),
    ...opt(
      "routeMetric",
      maybe(() => int(2 ** 32)),
    ),
    allowedIps: Array.from({ length: int(5) }, cidr),
  }));
  return {
    name: pick(["scope0", "wg-corp", "s.1", "x"]),
    kind: "wireguard",
    ...opt(
      "description",
      maybe(() => pick(["Scope mesh corp", "a = b # not a comment", "ünïcode ✓"])),
    ),
    ...opt(
      "mtuBytes",
      maybe(() => 68 + int(9000)),
    ),
    ...opt(
      "privateKeyFile",
      maybe(() => "/etc/systemd/network/50-scope-x.key"),
    ),
    ...opt(
      "listenPort",
      maybe(() => 1 + int(65535)),
    ),
    ...opt(
      "firewallMark",
      maybe(() => int(2 ** 32)),
    ),
    ...opt(
      "routeTable",
      maybe(() => pick(["off", "main", "42"])),
    ),
    ...opt(
      "routeMetric",
      maybe(() => int(2 ** 32)),
    ),
    peers,
  };
}

describe("networkd round trip", function () {
  this.timeout(20_000); // 500 random models: slow on a busy host, not a hang
  it("parseNetdev(formatNetdev(m)) == m for 500 seeded random models", () => {
    const rand = prng(0x5c0e);
    for (let i = 0; i < 500; i++) {
      const m = randomModel(rand);
      const text = formatNetdev(m, ["# case " + i]);
      expect(parseNetdev(text).config, `case ${i}:\n${text}`).to.deep.equal(m);
    }
  });

  it("parse(render(desired)) == model(desired) for random desired states", () => {
    const rand = prng(7);
    for (let i = 0; i < 100; i++) {
      const peers = [alice, bob, hub]
        .filter(() => rand() < 0.7)
        .map((p) => ({ ...p, persistentKeepalive: Math.floor(rand() * 100) }));
      const d = mesh(peers, { listenPort: 1 + Math.floor(rand() * 65535) });
      const text = formatNetdev(netdevModel(d, { network: "corp" }));
      expect(parseNetdev(text).config).to.deep.equal(netdevModel(d, { network: "corp" }));
    }
  });
});
