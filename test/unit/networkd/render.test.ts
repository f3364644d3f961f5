import { expect } from "chai";
import { netdevModel, renderFiles, renderNetdev, renderNetwork } from "../../../networkd/render.js";
import { expectGolden } from "./golden.js";
import { ALICE, HUB, SECRETS, alice, bob, hub, mesh } from "./fixtures.js";

const corp = { network: "corp" };

describe("networkd render", () => {
  it("renders a mesh with a hub, a direct peer and a peer without endpoint (golden)", () => {
    const d = mesh([bob, hub, alice], { mtu: 1420 });
    expectGolden("mesh.netdev", renderNetdev(d, corp));
    expectGolden("mesh.network", renderNetwork(d, corp));
  });

  it("renders a lone interface with [backend] extras (golden)", () => {
    const d = mesh([], { addresses: ["10.88.0.5/16"] });
    const opts = {
      network: "lab-1",
      dir: "/run/systemd/network",
      firewallMark: 51820,
      routeTable: "off",
      routeMetric: 100,
    };
    expectGolden("lone.netdev", renderNetdev(d, opts));
    expectGolden("lone.network", renderNetwork(d, opts));
  });

  it("orders peers by public key, so input order does not change the bytes", () => {
    expect(renderNetdev(mesh([alice, hub, bob]), corp)).to.equal(renderNetdev(mesh([hub, bob, alice]), corp));
  });

  it("keeps every secret out of .netdev and .network, and puts each in its own file", () => {
    const files = renderFiles(mesh([alice, hub, bob]), corp);
    expect(files.map((f) => `${f.secret ? "secret" : "public"} ${f.name}`)).to.deep.equal([
      "public 50-scope-corp.netdev",
      "public 50-scope-corp.network",
      "secret 50-scope-corp.key",
      `secret ${files[3]!.name}`,
      `secret ${files[4]!.name}`,
    ]);
    for (const f of files.slice(3)) expect(f.name).to.match(/^50-scope-corp\.peer-[0-9a-f]{16}\.psk$/);
    for (const f of files.filter((x) => !x.secret))
      for (const s of SECRETS) expect(f.content).not.to.contain(s);
    expect(files.filter((f) => f.secret).map((f) => f.content.trim())).to.include.members([
      alice.presharedKey,
      hub.presharedKey,
    ]);
  });

  it("points PresharedKeyFile= at the PSK file of that peer", () => {
    const files = renderFiles(mesh([alice, hub]), corp);
    const model = netdevModel(mesh([alice, hub]), corp);
    for (const p of model.peers) {
      const name = p.presharedKeyFile!.split("/").pop();
      const file = files.find((f) => f.name === name)!;
      expect(file.content.trim()).to.equal(p.publicKey === ALICE ? alice.presharedKey : hub.presharedKey);
    }
    expect(model.peers.map((p) => p.publicKey)).to.have.members([ALICE, HUB]);
  });

  const rejects: [string, () => unknown, RegExp][] = [
    ["a newline in an endpoint", () => mesh([{ ...alice, endpoint: "1.2.3.4:5\nPublicKey=x" }]), /endpoint/],
    ["a bad public key", () => mesh([{ ...alice, publicKey: "abc" }]), /peer public key/],
    ["a duplicate peer", () => mesh([alice, alice]), /listed twice/],
    ["a long interface name", () => mesh([], { name: "scope-very-long-name" }), /1 to 15 bytes/],
    ["port 0", () => mesh([], { listenPort: 0 }), /listen port/],
    ["a keepalive above 65535", () => mesh([{ ...bob, persistentKeepalive: 70000 }]), /keepalive/],
    [
      "an IPv6 endpoint without brackets",
      () => mesh([{ ...bob, endpoint: "2001:db8::1:51820" }]),
      /brackets/,
    ],
  ];
  for (const [what, state, re] of rejects)
    it(`refuses ${what}`, () =>
      expect(() => renderNetdev(state() as ReturnType<typeof mesh>, corp)).to.throw(re));

  it("refuses a network name that could escape its file names", () => {
    expect(() => renderNetdev(mesh([]), { network: "a/b" })).to.throw(/network name/);
    expect(() => renderNetdev(mesh([]), { network: "a.b" })).to.throw(/network name/);
  });
});
