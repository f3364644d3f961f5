import { expect } from "chai";
import { normalizeDesired, planDevice } from "../../../src/wireguard/diff.js";
import { parseDump, wgRetriggerCommands, wgSetCommands } from "../../../src/wireguard/wgtool.js";
import { PEER_B, PEER_C, PRIVATE_A, PSK_1, SECRETS, device, live, peerB, stateWith } from "./fixtures.js";

describe("wg wgtool: `wg show IFACE dump`", () => {
  it("parses the interface line and peer lines, (none) and off included", () => {
    const dump = [
      [PRIVATE_A, "pubA=", "51820", "off"],
      [PEER_B, PSK_1, "192.0.2.2:51820", "10.88.0.2/32,fd88::2/128", "1700000000", "92", "1480", "off"],
      [PEER_C, "(none)", "(none)", "(none)", "0", "0", "0", "25"],
    ]
      .map((f) => f.join("\t"))
      .join("\n");
    expect(parseDump(`${dump}\n`)).to.deep.equal({
      privateKey: PRIVATE_A,
      listenPort: 51820,
      peers: [
        {
          publicKey: PEER_B,
          presharedKey: PSK_1,
          endpoint: "192.0.2.2:51820",
          allowedIps: ["10.88.0.2/32", "fd88::2/128"],
          persistentKeepalive: 0,
          lastHandshakeMs: 1700000000000,
          rxBytes: 92,
          txBytes: 1480,
        },
        {
          publicKey: PEER_C,
          presharedKey: undefined,
          endpoint: undefined,
          allowedIps: [],
          persistentKeepalive: 25,
          lastHandshakeMs: undefined,
          rxBytes: 0,
          txBytes: 0,
        },
      ],
    });
  });

  it("refuses truncated output", () => {
    expect(() => parseDump("")).to.throw(/interface line/);
    expect(() => parseDump(`a\tb\t1\toff\n${PEER_B}\t(none)\n`)).to.throw(/short peer line/);
  });
});

describe("wg wgtool: `wg set` commands", () => {
  it("puts each secret on stdin of its own command, never on argv", () => {
    const want = normalizeDesired(stateWith([{ ...peerB, presharedKey: PSK_1 }]));
    const cmds = wgSetCommands("scope0", planDevice({ peers: [] }, want), want);
    expect(cmds.map((c) => `${c.args.join(" ")}${c.stdin === undefined ? "" : " <stdin>"}`)).to.deep.equal([
      "set scope0 private-key /dev/stdin <stdin>",
      `set scope0 peer ${PEER_B} preshared-key /dev/stdin <stdin>`,
      `set scope0 listen-port 51820 peer ${PEER_B} endpoint 192.0.2.2:51820 allowed-ips 10.88.0.2/32`,
    ]);
    expect(cmds.map((c) => c.stdin)).to.deep.equal([PRIVATE_A, PSK_1, undefined]);
    for (const s of SECRETS) expect(cmds.flatMap((c) => c.args).join(" ")).not.to.contain(s);
  });

  it("clears a PSK with /dev/null and turns keepalive off by word", () => {
    const want = normalizeDesired(stateWith([peerB]));
    const have = device([
      live({
        publicKey: PEER_B,
        presharedKey: PSK_1,
        endpoint: "192.0.2.2:51820",
        allowedIps: ["10.88.0.2/32"],
        persistentKeepalive: 25,
      }),
    ]);
    expect(wgSetCommands("scope0", planDevice(have, want), want)).to.deep.equal([
      {
        args: ["set", "scope0", "peer", PEER_B, "persistent-keepalive", "off", "preshared-key", "/dev/null"],
      },
    ]);
  });

  it("re-creates a peer for a handshake trigger in one wg set, its PSK on stdin", () => {
    // One command: a reader between separate remove and add commands saw
    // the peer gone (nm-pair read an empty peer list there).
    const p = live({
      publicKey: PEER_B,
      presharedKey: PSK_1,
      endpoint: "192.0.2.2:51820",
      allowedIps: ["10.88.0.2/32"],
    });
    expect(wgRetriggerCommands("scope0", p)).to.deep.equal([
      {
        args: [
          ...["set", "scope0", "peer", PEER_B, "remove"],
          ...["peer", PEER_B, "preshared-key", "/dev/stdin", "endpoint", "192.0.2.2:51820"],
          ...["persistent-keepalive", "1", "allowed-ips", "10.88.0.2/32"],
          ...["peer", PEER_B, "persistent-keepalive", "off"],
        ],
        stdin: PSK_1,
      },
    ]);
    const kept = { ...p, presharedKey: undefined, persistentKeepalive: 25 };
    expect(wgRetriggerCommands("scope0", kept)).to.deep.equal([
      {
        args: [
          ...["set", "scope0", "peer", PEER_B, "remove", "peer", PEER_B],
          ...["endpoint", "192.0.2.2:51820", "persistent-keepalive", "25", "allowed-ips", "10.88.0.2/32"],
        ],
      },
    ]);
  });
});
