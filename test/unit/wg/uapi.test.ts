import { expect } from "chai";
import { normalizeDesired, planDevice } from "../../../src/wireguard/diff.js";
import {
  checkErrno,
  encodeRetrigger,
  encodeSet,
  isCompleteReply,
  keyFromHex,
  keyToHex,
  parseGet,
  UapiError,
} from "../../../src/wireguard/uapi.js";
import { device, hex, live, PEER_B, PEER_C, PRIVATE_A, PSK_1, peerB, peerC, stateWith } from "./fixtures.js";

const ZERO = "0".repeat(64);

/** A reply as wireguard-go 0.0.20220316 prints it for one interface with two peers. */
const GET_REPLY = [
  `private_key=${hex(PRIVATE_A)}`,
  "listen_port=51820",
  `public_key=${hex(PEER_B)}`,
  `preshared_key=${hex(PSK_1)}`,
  "protocol_version=1",
  "endpoint=192.0.2.2:51820",
  "last_handshake_time_sec=1700000000",
  "last_handshake_time_nsec=250000000",
  "tx_bytes=1480",
  "rx_bytes=92",
  "persistent_keepalive_interval=0",
  "allowed_ip=10.88.0.2/32",
  `public_key=${hex(PEER_C)}`,
  `preshared_key=${ZERO}`,
  "protocol_version=1",
  "last_handshake_time_sec=0",
  "last_handshake_time_nsec=0",
  "tx_bytes=0",
  "rx_bytes=0",
  "persistent_keepalive_interval=25",
  "allowed_ip=fd88::3/128",
  "allowed_ip=10.88.0.3/32",
  "errno=0",
  "",
  "",
].join("\n");

describe("wg uapi: keys", () => {
  it("converts base64 <=> hex both ways", () => {
    expect(keyToHex(PEER_B)).to.equal("02".repeat(32));
    expect(keyFromHex("02".repeat(32))).to.equal(PEER_B);
    expect(keyFromHex("0A".repeat(32))).to.equal(Buffer.alloc(32, 10).toString("base64"));
  });
  for (const bad of ["", "AAAA", `${PEER_B}x`, Buffer.alloc(31).toString("base64")]) {
    it(`refuses base64 ${JSON.stringify(bad)}`, () => expect(() => keyToHex(bad)).to.throw(/32 bytes/));
  }
  for (const bad of ["00", "zz".repeat(32), "0".repeat(66)]) {
    it(`refuses hex ${bad.slice(0, 8)}…`, () => expect(() => keyFromHex(bad)).to.throw(/64 hex/));
  }
});

describe("wg uapi: replies", () => {
  it("parses a get reply into base64 keys, canonical IPs, epoch ms", () => {
    const { state, ignored } = parseGet(GET_REPLY);
    expect(ignored).to.deep.equal([]);
    expect(state).to.deep.equal({
      privateKey: PRIVATE_A,
      listenPort: 51820,
      peers: [
        {
          publicKey: PEER_B,
          presharedKey: PSK_1,
          endpoint: "192.0.2.2:51820",
          allowedIps: ["10.88.0.2/32"],
          persistentKeepalive: 0,
          lastHandshakeMs: 1700000000250,
          rxBytes: 92,
          txBytes: 1480,
        },
        {
          publicKey: PEER_C,
          allowedIps: ["10.88.0.3/32", "fd88::3/128"],
          persistentKeepalive: 25,
          lastHandshakeMs: undefined,
          rxBytes: 0,
          txBytes: 0,
        },
      ],
    });
  });

  it("ignores (and reports) keys it does not know, in both sections", () => {
    const reply = `private_key=${ZERO}\nfwmark=7\njc=4\npublic_key=${hex(PEER_B)}\nh1=9\nerrno=0\n\n`;
    const { state, ignored } = parseGet(reply);
    expect(ignored).to.deep.equal(["fwmark", "jc", "h1"]);
    expect(state.privateKey).to.equal(undefined);
    expect(state.peers[0]!.publicKey).to.equal(PEER_B);
  });

  const errnoRows: [string, string, RegExp | undefined][] = [
    ["ok", "errno=0\n\n", undefined],
    ["EINVAL", "errno=-22\n\n", /errno=-22 EINVAL/],
    ["EADDRINUSE", "errno=-98\n\n", /EADDRINUSE/],
    ["unknown code", "errno=-1\n\n", /errno=-1$/],
    ["no errno line", "private_key=00\n\n", /without errno/],
  ];
  for (const [name, reply, want] of errnoRows) {
    it(`errno: ${name}`, () => {
      if (!want) return expect(() => checkErrno(reply, "set")).not.to.throw();
      expect(() => checkErrno(reply, "set")).to.throw(UapiError, want);
    });
  }

  it("a get reply with a non-zero errno throws with the code", () => {
    try {
      parseGet("errno=-5\n\n");
      expect.fail("no throw");
    } catch (err) {
      expect((err as UapiError).errno).to.equal(-5);
    }
  });

  it("malformed lines and numbers are protocol errors", () => {
    expect(() => parseGet("garbage\nerrno=0\n\n")).to.throw(UapiError, /malformed/);
    expect(() => parseGet(`public_key=${hex(PEER_B)}\nrx_bytes=-1\nerrno=0\n\n`)).to.throw(
      UapiError,
      /rx_bytes/,
    );
  });

  it("knows when a streamed reply is complete", () => {
    expect(isCompleteReply(GET_REPLY.slice(0, 40))).to.equal(false);
    expect(isCompleteReply(GET_REPLY.slice(0, -1))).to.equal(false);
    expect(isCompleteReply(GET_REPLY)).to.equal(true);
    expect(isCompleteReply("errno=0\n\n")).to.equal(true);
  });
});

describe("wg uapi: requests", () => {
  it("a first set carries the device and full peers", () => {
    const want = normalizeDesired(stateWith([{ ...peerB, presharedKey: PSK_1 }, peerC]));
    const text = encodeSet(planDevice({ peers: [] }, want), want);
    expect(text).to.equal(
      [
        "set=1",
        `private_key=${hex(PRIVATE_A)}`,
        "listen_port=51820",
        `public_key=${hex(PEER_B)}`,
        `preshared_key=${hex(PSK_1)}`,
        "endpoint=192.0.2.2:51820",
        "replace_allowed_ips=true",
        "allowed_ip=10.88.0.2/32",
        `public_key=${hex(PEER_C)}`,
        "endpoint=[2001:db8::3]:51820",
        "persistent_keepalive_interval=25",
        "replace_allowed_ips=true",
        "allowed_ip=10.88.0.3/32",
        "allowed_ip=fd88::3/128",
        "",
        "",
      ].join("\n"),
    );
  });

  it("updates use update_only and group per peer; a cleared PSK is the zero key", () => {
    const want = normalizeDesired(stateWith([{ ...peerB, endpoint: "192.0.2.9:1", persistentKeepalive: 5 }]));
    const have = device([live({ publicKey: PEER_B, presharedKey: PSK_1, endpoint: "192.0.2.2:51820" })]);
    expect(encodeSet(planDevice(have, want), want)).to.equal(
      [
        "set=1",
        `public_key=${hex(PEER_B)}`,
        "update_only=true",
        "endpoint=192.0.2.9:1",
        "replace_allowed_ips=true",
        "allowed_ip=10.88.0.2/32",
        "persistent_keepalive_interval=5",
        `preshared_key=${ZERO}`,
        "",
        "",
      ].join("\n"),
    );
  });

  it("the handshake trigger re-adds the peer with keepalive on, then restores it", () => {
    const peer = {
      publicKey: PEER_B,
      endpoint: "198.51.100.7:4000",
      allowedIps: ["10.88.0.2/32"],
      persistentKeepalive: 0,
      rxBytes: 5,
      txBytes: 5,
    };
    expect(encodeRetrigger(peer)).to.equal(
      [
        "set=1",
        `public_key=${hex(PEER_B)}`,
        "remove=true",
        `public_key=${hex(PEER_B)}`,
        "endpoint=198.51.100.7:4000",
        "persistent_keepalive_interval=1",
        "replace_allowed_ips=true",
        "allowed_ip=10.88.0.2/32",
        `public_key=${hex(PEER_B)}`,
        "update_only=true",
        "persistent_keepalive_interval=0",
        "",
        "",
      ].join("\n"),
    );
    // With keepalive already on, re-adding alone starts the handshake: no restore step.
    expect(encodeRetrigger({ ...peer, persistentKeepalive: 25 })).not.to.contain("update_only");
  });
});
