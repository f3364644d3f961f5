import { expect } from "chai";
import {
  applyPlan,
  describeChange,
  normalizeDesired,
  planDevice,
  planLink,
  type PeerChange,
} from "../../../src/wireguard/diff.js";
import { canonicalAddress, canonicalCidr, canonicalEndpoint } from "../../../src/core/ip.js";
import type { DeviceState, PeerState } from "../../../src/wireguard/model.js";
import {
  PEER_B,
  PEER_C,
  PRIVATE_A,
  PRIVATE_A2,
  PSK_1,
  PSK_2,
  SECRETS,
  device,
  live,
  peerB,
  stateWith,
} from "./fixtures.js";

const B = "AgICAgIC…";

describe("wg diff: canonical spelling (src/core/ip.ts)", () => {
  const rows: [string, (s: string) => string, string, string][] = [
    ["masks host bits", canonicalCidr, "10.1.2.3/16", "10.1.0.0/16"],
    ["bare v4 is a /32", canonicalCidr, "10.1.2.3", "10.1.2.3/32"],
    ["compresses v6", canonicalCidr, "FD88:0:0:0::3/128", "fd88::3/128"],
    ["longest zero run wins", canonicalCidr, "1:0:0:2:0:0:0:3/128", "1:0:0:2::3/128"],
    ["single zero group is not compressed", canonicalCidr, "1:0:2:3:4:5:6:7/128", "1:0:2:3:4:5:6:7/128"],
    ["v4 tail in v6", canonicalCidr, "::ffff:10.0.0.1/128", "::ffff:a00:1/128"],
    ["address keeps host bits", canonicalAddress, "fd88:0::5/64", "fd88::5/64"],
    ["v4 endpoint", canonicalEndpoint, "192.0.2.1:51820", "192.0.2.1:51820"],
    ["v6 endpoint", canonicalEndpoint, "[2001:DB8:0::1]:51820", "[2001:db8::1]:51820"],
  ];
  for (const [name, fn, input, want] of rows) it(`${name}: ${input}`, () => expect(fn(input)).to.equal(want));

  for (const bad of [
    "10.0.0.256/32",
    "010.0.0.1/32",
    "10.0.0.1/33",
    "1::2::3/128",
    "example.com:51820",
    "1.2.3.4:0",
  ]) {
    it(`refuses ${bad}`, () => {
      const fn = bad.includes(":") && !bad.includes("::") ? canonicalEndpoint : canonicalCidr;
      expect(() => fn(bad)).to.throw();
    });
  }
});

describe("wg diff: planDevice", () => {
  const rows: {
    name: string;
    have: PeerState[];
    want: Parameters<typeof stateWith>[0];
    changes: string[];
  }[] = [
    {
      name: "nothing to do",
      have: [live({ publicKey: PEER_B, endpoint: "192.0.2.2:51820", allowedIps: ["10.88.0.2/32"] })],
      want: [peerB],
      changes: [],
    },
    {
      name: "add",
      have: [],
      want: [peerB],
      changes: [
        `peer ${B} added: endpoint 192.0.2.2:51820, allowed-ips 10.88.0.2/32, keepalive off, preshared-key (none)`,
      ],
    },
    { name: "remove", have: [live({ publicKey: PEER_C })], want: [], changes: ["peer AwMDAwMD… removed"] },
    {
      name: "endpoint only",
      have: [live({ publicKey: PEER_B, endpoint: "198.51.100.9:4000", allowedIps: ["10.88.0.2/32"] })],
      want: [peerB],
      changes: [`peer ${B} endpoint 198.51.100.9:4000 => 192.0.2.2:51820`],
    },
    {
      name: "absent desired endpoint keeps the roamed one",
      have: [live({ publicKey: PEER_B, endpoint: "198.51.100.9:4000", allowedIps: ["10.88.0.2/32"] })],
      want: [{ ...peerB, endpoint: undefined }],
      changes: [],
    },
    {
      name: "allowed IPs compare as canonical sets",
      have: [
        live({ publicKey: PEER_B, endpoint: "192.0.2.2:51820", allowedIps: ["10.88.0.2/32", "fd88::2/128"] }),
      ],
      want: [{ ...peerB, allowedIps: ["fd88:0::2/128", "10.88.0.2"] }],
      changes: [],
    },
    {
      name: "allowed IPs change",
      have: [live({ publicKey: PEER_B, endpoint: "192.0.2.2:51820", allowedIps: ["10.88.0.2/32"] })],
      want: [{ ...peerB, allowedIps: ["10.88.0.0/16"] }],
      changes: [`peer ${B} allowed-ips 10.88.0.2/32 => 10.88.0.0/16`],
    },
    {
      name: "keepalive",
      have: [
        live({
          publicKey: PEER_B,
          endpoint: "192.0.2.2:51820",
          allowedIps: ["10.88.0.2/32"],
          persistentKeepalive: 25,
        }),
      ],
      want: [peerB],
      changes: [`peer ${B} keepalive 25s => off`],
    },
    {
      name: "psk set, rotated, cleared",
      have: [
        live({
          publicKey: PEER_B,
          endpoint: "192.0.2.2:51820",
          allowedIps: ["10.88.0.2/32"],
          presharedKey: PSK_1,
        }),
        live({ publicKey: PEER_C, allowedIps: ["10.88.0.3/32"], presharedKey: PSK_1 }),
      ],
      want: [
        { ...peerB, presharedKey: PSK_2 },
        { publicKey: PEER_C, allowedIps: ["10.88.0.3/32"] },
      ],
      changes: [`peer ${B} preshared-key (set) => (new)`, "peer AwMDAwMD… preshared-key (set) => (none)"],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const plan = planDevice(device(row.have), normalizeDesired(stateWith(row.want)));
      expect(plan.device).to.deep.equal([]);
      expect(plan.peers.map(describeChange)).to.deep.equal(row.changes);
    });
    it(`${row.name}: applyPlan gives a device with nothing left to do`, () => {
      const want = normalizeDesired(stateWith(row.want));
      const have = device(row.have);
      const after = applyPlan(have, planDevice(have, want), want);
      expect(planDevice(after, want)).to.deep.equal({ device: [], peers: [] });
    });
  }

  it("applyPlan: the device a read would return after the write, counters aside", () => {
    const have: DeviceState = {
      listenPort: 1,
      peers: [
        live({ publicKey: PEER_B, endpoint: "198.51.100.9:4000", allowedIps: ["10.88.0.2/32"], rxBytes: 7 }),
        live({ publicKey: PEER_C, allowedIps: ["10.88.0.3/32"], presharedKey: PSK_1 }),
      ],
    };
    const want = normalizeDesired(
      stateWith([{ ...peerB, allowedIps: ["10.88.0.0/16"], persistentKeepalive: 25, presharedKey: PSK_2 }]),
    );
    expect(applyPlan(have, planDevice(have, want), want)).to.deep.equal({
      privateKey: PRIVATE_A,
      listenPort: 51820,
      peers: [
        live({
          publicKey: PEER_B,
          endpoint: "192.0.2.2:51820",
          allowedIps: ["10.88.0.0/16"],
          persistentKeepalive: 25,
          presharedKey: PSK_2,
          rxBytes: 7,
        }),
      ],
    });
    expect(have.peers, "the input is left as it was").to.have.length(2);
  });

  it("device changes print public halves only", () => {
    const plan = planDevice(
      { privateKey: PRIVATE_A, listenPort: 1, peers: [] },
      normalizeDesired(stateWith([], { privateKey: PRIVATE_A2 })),
    );
    const lines = plan.device.map(describeChange);
    expect(lines).to.have.length(2);
    expect(lines[0]).to.match(/^interface public key \S+… => \S+…$/);
    expect(lines[1]).to.equal("interface listen-port 1 => 51820");
    for (const s of SECRETS) expect(JSON.stringify(plan) + lines.join("")).not.to.contain(s);
  });

  it("a PSK change carries no key material", () => {
    const plan = planDevice(device([]), normalizeDesired(stateWith([{ ...peerB, presharedKey: PSK_1 }])));
    const add = plan.peers[0] as Extract<PeerChange, { kind: "add" }>;
    expect(add.psk).to.equal(true);
    for (const s of SECRETS) expect(JSON.stringify(plan)).not.to.contain(s);
  });

  it("refuses a peer listed twice", () => {
    expect(() => normalizeDesired(stateWith([peerB, peerB]))).to.throw(/listed twice/);
  });
});

describe("wg diff: planLink", () => {
  it("adds missing, removes extra, sets MTU and brings the link up", () => {
    const want = normalizeDesired(stateWith([], { addresses: ["10.88.0.1/16", "fd88::1/64"], mtu: 1380 }));
    const changes = planLink({ up: false, mtu: 1420, addresses: ["10.99.0.1/16", "10.88.0.1/16"] }, want);
    expect(changes.map(describeChange)).to.deep.equal([
      "interface mtu 1420 => 1380",
      "interface address - 10.99.0.1/16",
      "interface address + fd88::1/64",
      "interface link up",
    ]);
  });

  it("leaves the MTU alone when none is desired", () => {
    expect(
      planLink({ up: true, mtu: 1420, addresses: ["10.88.0.1/16"] }, normalizeDesired(stateWith([]))),
    ).to.deep.equal([]);
  });
});
