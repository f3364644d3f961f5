// Two VMs: a kernel WireGuard tunnel over the private link carries pings both
// ways. This is the baseline the NM and networkd backend cases build on: if it
// fails, the image or the link is broken, not a backend.
import { expectOutput, wgKeyPair, type SystemCase } from "../case.js";

const WG_NET = "10.77.0";

// Same script on both sides; the per-side values come from the environment.
const script = `
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
  description: "kernel WireGuard tunnel between two VMs on a private link",
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
    for (const vm of results) {
      expectOutput(vm, /3 packets transmitted, 3 received/, "tunnel pings lost");
      expectOutput(vm, /latest handshake/, "no WireGuard handshake");
    }
  },
};
export default wgPair;
