// Two VMs: a kernel WireGuard tunnel over the private link carries pings both
// ways. This is the baseline the NM and networkd backend cases build on: if it
// fails, the image or the link is broken, not a backend.
//
// VM a first checks what every other case relies on (this was the "smoke"
// case; a boot under TCG costs a minute or two, so it rides along here):
// kernel WireGuard, networkd and NetworkManager running, the Debian node able
// to load the project's native module (host-built better-sqlite3) from the
// read-only share.
import { expectOutput, wgKeyPair, type SystemCase } from "../case.js";

const WG_NET = "10.77.0";

const smoke = `
wg --version
systemctl is-active dbus systemd-networkd NetworkManager
networkctl list --no-pager
echo "nm $(NetworkManager --version)"
echo "kernel $(uname -r)"
node --version
(cd "$SCOPE_PROJECT" && node -e 'const Db = require("better-sqlite3"); const db = new Db(":memory:");
console.log("sqlite " + db.prepare("select sqlite_version() as v").get().v);')
`;

// Same script on both sides; the per-side values come from the environment.
const script = `
if [ "$SCOPE_VM_NAME" = a ]; then
${smoke}
fi
ip link set "$SCOPE_LINK_IF" up
ip addr add "$SCOPE_LINK_ADDR" dev "$SCOPE_LINK_IF"
barrier link
ping -c 1 -w 15 "$SCOPE_PEER_IP"
modprobe wireguard
ip link add wg0 type wireguard
# Keys from files, never on the command line.
wg set wg0 private-key "$SCOPE_IN/wg.key" listen-port 51820 \\
	peer "$(cat "$SCOPE_IN/peer.pub")" endpoint "$SCOPE_PEER_IP:51820" allowed-ips "$WG_PEER/32"
ip addr add "$WG_ADDR/24" dev wg0
ip link set wg0 up
barrier wg
ping -c 3 -i 0.3 -w 20 "$WG_PEER"
wg show wg0
# Stay up until the peer has finished pinging too.
barrier done
`;

const wgPair: SystemCase = {
  name: "wg-pair",
  description:
    "guest tooling (wg, networkd, NetworkManager, node + better-sqlite3); kernel WireGuard tunnel between two VMs",
  guests: () => {
    const [ka, kb] = [wgKeyPair(), wgKeyPair()];
    const side = (own: typeof ka, peer: typeof kb, addr: string, peerAddr: string) => ({
      script,
      files: { "wg.key": `${own.privateKey}\n`, "peer.pub": `${peer.publicKey}\n` },
      env: { WG_ADDR: addr, WG_PEER: peerAddr },
    });
    return [side(ka, kb, `${WG_NET}.1`, `${WG_NET}.2`), side(kb, ka, `${WG_NET}.2`, `${WG_NET}.1`)];
  },
  check: (results) => {
    const a = results[0]!;
    expectOutput(a, /wireguard-tools v1\./, "wg missing");
    expectOutput(a, /^v20\./m, "node is not 20.x");
    expectOutput(a, /^sqlite 3\.\d+/m, "better-sqlite3 did not load in the guest");
    expectOutput(a, /^nm 1\./m, "NetworkManager missing");
    for (const vm of results) {
      // -c 3 with -w: ping sends until 3 replies come. Under TCG a first
      // initiation can go unanswered and WireGuard retries 5 s later, with
      // every ping queued meanwhile (CI: 17 sent, 17 received): lost means
      // fewer received than sent, not more than 3 sent.
      expectOutput(vm, /\b(\d+) packets transmitted, \1 received/, "tunnel pings lost");
      expectOutput(vm, /latest handshake/, "no WireGuard handshake");
    }
  },
};
export default wgPair;
