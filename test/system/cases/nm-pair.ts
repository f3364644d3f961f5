// Two VMs, one boot each, covering acceptance 1-5 of the NetworkManager
// backend (issue 12; docs/backends.md "networkmanager", docs/dbus.md):
// - VM a runs the registry and a daemon with `backend = networkmanager`
//   (the real scope@.service unit) with dbus-next's usocket hidden, as the
//   package ships it; the profile "Scope mesh" is listed by nmcli with b's
//   peer, and a pings b in the tunnel;
// - cc.ltgc.Scope1: a user outside group scope reads status and peers and
//   is refused Pause/Resume, a member of scope pauses and resumes;
// - `nmcli connection down`: scope0 goes and stays gone 30 s, the daemon
//   paused; `up`: pinging again;
// - c (a namespace on b, wg backend) joins and is removed while a pings b:
//   no sequence number lost, b's peer never re-created;
// - `systemctl restart NetworkManager`: same daemon process, pings after;
//   then the profile deleted by hand is reported, not recreated by itself,
//   and comes back on `scope recreate`;
// - nm-facts.js drives the plugin with PSKs on a profile of its own and
//   records the NetworkManager facts of docs/dbus.md.
// VM b joins with the kernel wg backend and hosts c.
import { installCa, REGISTRY_CA, REGISTRY_URL, registryConfig, registryGuestFiles } from "../registry-tls.js";
import { expectOutput, type SystemCase } from "../case.js";

const LIB = "source /project/test/system/cases/networkd-lib.sh";
const URL = REGISTRY_URL;
const CA = REGISTRY_CA;
const PROFILE = "Scope mesh";
const BUS = `cc.ltgc.Scope1.mesh /cc/ltgc/Scope1 cc.ltgc.Scope1`;

// Shell helpers of this case (networkd-lib.sh has the shared ones).
const helpers = `
# ms since the epoch, for the figures the host reports.
now_ms() { date +%s%3N; }
link_gone() { ! ip link show scope0 >/dev/null 2>&1; }
peer_absent() { ! wg show scope0 peers | grep -qx "$1"; }
pings() { ping -c 1 -W 1 "$1" >/dev/null 2>&1; }
# Peers as scope0 has them (a node process costs seconds under TCG; wg does not).
other_peer() { wg show scope0 peers | grep -vx "$1"; } # a peer that is not KEY
# await_other_peer SECONDS KEY: print a peer that is not KEY once scope0 has
# one, from the poll that saw it. Polling and then reading again raced when a
# handshake trigger re-created a peer in separate wg(8) commands (remove, then
# add): C_KEY came back empty in CI. The trigger is one wg set now; reading
# once keeps the script from depending on that.
await_other_peer() {
	{ set +x; } 2>/dev/null # a subshell: the caller's trace is untouched
	local key end=$((SECONDS + $1))
	until key=$(other_peer "$2"); do
		if ((SECONDS >= end)); then
			echo "timed out after $1s waiting for a peer other than $2" >&2
			return 1
		fi
		sleep 0.5
	done
	echo "$key"
}
tunnel_ip() { wg show scope0 allowed-ips | awk -v k="$1" '$1 == k { sub("/.*", "", $2); print $2 }'; }
has_tunnel_ip() { [ -n "$(tunnel_ip "$1")" ]; }
# Every peer direct again (cc.ltgc.Scope1): a resume re-attempts each path, and its handshake triggers re-create the peer.
all_direct() { ! busctl --system call ${BUS} GetPeers | grep -qE '"path" s "(pending|none)"'; }
state_of() { busctl --system call ${BUS} GetStatus | grep -o '"state" s "[a-z-]*"'; }
bus_as() { # USER METHOD: busctl as USER; prints the reply or the error
	runuser -u "$1" -- busctl --system call ${BUS} "$2" 2>&1
}
# What a saw of c when the ping to c failed (the journal stays in the run dir).
diag_c() {
	echo "diag: ping a -> c ($C_ADDR) failed"
	wg show scope0 endpoints
	wg show scope0 allowed-ips
	wg show scope0 latest-handshakes
	wg show scope0 transfer
	ip -br addr show scope0
	ip route get "$C_ADDR"
	busctl --system call ${BUS} GetPeers
	journalctl -u scope@$NET -o cat -n 8 --no-pager
}
profile_file() { grep -l "^id=${PROFILE}$" /etc/NetworkManager/system-connections/*.nmconnection; }
`;

const scriptA = `
${LIB}
${helpers}
install_scope
# As packaged (packaging/prune-modules.mjs): no usocket, so dbus-next uses node:net.
mount -t tmpfs -o size=1m tmpfs "$(readlink -f /project/node_modules)/usocket"
(cd /project && node -e 'try { require("usocket"); console.log("usocket loads") } catch { console.log("ok: usocket absent") }')
ip link set "$SCOPE_LINK_IF" up
ip addr add "$SCOPE_LINK_ADDR" dev "$SCOPE_LINK_IF"
ip route add 10.99.0.0/24 via "$SCOPE_PEER_IP"
# cc.ltgc.Scope1's bus policy as the package installs it, a plain user and one in group scope.
install -m 0644 /project/dbus/cc.ltgc.Scope1.conf /usr/share/dbus-1/system.d/
groupadd -r scope
useradd -m alice
useradd -m -G scope bob
systemctl reload dbus
${registryConfig}
barrier link
systemd-run -q --unit=scope-registry --collect /usr/bin/scope registry --config /etc/scope-registry.conf \\
	--listen "$SCOPE_LINK_IP:$REG_PORT" --data /var/lib/scope-registry
wait_for 240 test -S /run/scope/registry/admin.sock
scope network create "$NET" --cidr 10.88.0.0/16
scope token create "$NET" --uses 1 >/root/a.token
scope join "${URL}" --ca-file ${CA} --network "$NET" --token-file /root/a.token --backend networkmanager --name a --no-start
debug_log /etc/scope/$NET.conf
systemctl start scope@$NET
wait_for 240 ip link show scope0
wait_for 180 scope status --network "$NET" --json
scope status --network "$NET" | head -n 1
barrier a-up

# The plugin with PSKs, and NetworkManager's facts, while b joins.
node /project/dist/test/system/nm-facts.js

barrier b-up
B_KEY=$(await_other_peer 240 none)
B_ADDR=$(tunnel_ip "$B_KEY")
wait_for 240 has_handshake scope0 "$B_KEY"

# Acceptance 1.
nmcli -t -f NAME,TYPE,DEVICE connection show
echo "profile type: $(nmcli -g connection.type connection show "${PROFILE}")"
nmcli -f wireguard,ipv4 connection show "${PROFILE}"
wg show scope0
wg show scope0 peers | grep -qx "$B_KEY" && echo "ok: scope0 has b's peer"
grep -qF "[wireguard-peer.$B_KEY]" "$(profile_file)" && echo "ok: the stored profile has b's peer"
ping -c 3 -i 0.3 -w 30 "$B_ADDR" && echo "ok: in-tunnel ping a -> b"

# Acceptance 5: cc.ltgc.Scope1 for users.
echo "alice GetStatus: $(bus_as alice GetStatus)"
echo "alice GetPeers: $(bus_as alice GetPeers)"
echo "alice Pause: $(bus_as alice Pause)"
echo "alice Resume: $(bus_as alice Resume)"
timeout 60 busctl --system --match "type='signal',interface='cc.ltgc.Scope1'" monitor >/tmp/signals.log 2>&1 &
MON=$!
sleep 2
echo "bob Pause: $(bus_as bob Pause)"
echo "paused status: $(bus_as alice GetStatus)"
scope status --network "$NET" | head -n 1
pings "$B_ADDR" && echo "ok: paused, the tunnel still carries traffic"
echo "bob Resume: $(bus_as bob Resume)"
echo "resumed: $(state_of)"
sleep 2
kill "$MON" || true
wait "$MON" || true
echo "StateChanged signals: $(grep -c 'Member=StateChanged' /tmp/signals.log || true)"
grep -A3 'Member=StateChanged' /tmp/signals.log | grep -E '^ +STRING|BOOLEAN' || true

# Acceptance 2: the user's switch.
T0=$(now_ms)
nmcli connection down "${PROFILE}"
T1=$(now_ms)
wait_for 30 link_gone
echo "down: scope0 gone $(($(now_ms) - T1)) ms after nmcli connection down returned (it took $((T1 - T0)) ms)"
sleep 30
link_gone && echo "ok: scope0 still gone 30 s later"
echo "switched off: $(state_of)"
systemctl is-active scope@$NET
T0=$(now_ms)
nmcli connection up "${PROFILE}"
T1=$(now_ms)
wait_for 60 pings "$B_ADDR"
echo "up: pinging b $(($(now_ms) - T1)) ms after nmcli connection up returned (it took $((T1 - T0)) ms)"
echo "switched on: $(state_of)"
# Acceptance 3 judges peer changes alone: the resume must be over first.
wait_for 120 all_direct

# Acceptance 3: c joins and is removed while a pings b.
start_watch scope0 "$B_ADDR"
sleep 2
barrier c-go
C_KEY=$(await_other_peer 240 "$B_KEY")
wait_for 240 has_handshake scope0 "$C_KEY"
# Read c's address once the peer has it (its allowed IPs come with the add).
wait_for 60 has_tunnel_ip "$C_KEY"
C_ADDR=$(tunnel_ip "$C_KEY")
if ping -c 2 -i 0.3 -w 30 "$C_ADDR"; then echo "ok: in-tunnel ping a -> c"; else diag_c >/tmp/diag-c.txt 2>&1; fi
grep -qF "[wireguard-peer.$C_KEY]" "$(profile_file)" && echo "ok: the stored profile has c's peer"
scope peer remove "$NET" c
wait_for 60 peer_absent "$C_KEY"
wait_for 30 bash -c "! grep -qF '[wireguard-peer.$C_KEY]' '$(profile_file)'"
echo "ok: c removed from scope0 and from the stored profile"
sleep 3
stop_watch
peer_kept "$B_KEY" && echo "ok: b's peer never re-created"
journalctl -u scope@$NET -o cat | grep 'networkmanager: applied' | tail -n 6 || true

# Acceptance 4: NetworkManager restarts under the daemon.
PID=$(systemctl show -p MainPID --value scope@$NET)
systemctl restart NetworkManager
wait_for 60 nmcli general status
sleep 5
[ "$(systemctl show -p MainPID --value scope@$NET)" = "$PID" ] && echo "ok: the daemon was not restarted"
ping -c 3 -i 0.3 -w 30 "$B_ADDR" && echo "ok: pings b after the NetworkManager restart"
journalctl -u scope@$NET -o cat | grep -E 'NetworkManager (left|\\(re\\)started)' || true

# The profile deleted by hand: reported, left deleted, recreated on request.
nmcli connection delete "${PROFILE}"
wait_for 30 link_gone
sleep 10
if nmcli -t -f NAME connection show | grep -qx "${PROFILE}"; then echo "FAIL: recreated by itself"; else echo "ok: not recreated by itself"; fi
journalctl -u scope@$NET -o cat | grep 'deleted outside Scope' | head -n 2 || true
echo "deleted: $(state_of)"
scope recreate --network "$NET"
wait_for 60 pings "$B_ADDR"
echo "ok: recreated on request and pinging b"
nmcli -t -f NAME,TYPE connection show
journalctl -q --no-pager -o short-precise -u scope@$NET >"$SCOPE_OUT/journal-a.log"
barrier done
# Last, so that a failure's tail shows it (CI prints the last 20 lines).
[ ! -f /tmp/diag-c.txt ] || tail -n 20 /tmp/diag-c.txt
`;

const scriptB = `
${LIB}
install_scope
ip link set "$SCOPE_LINK_IF" up
ip addr add "$SCOPE_LINK_ADDR" dev "$SCOPE_LINK_IF"
# c lives in a namespace here and reaches a through this VM. Made before b
# joins: its veth address added later is a local address change, b migrates,
# and a's re-attempt toward b (handshake triggers re-create the peer) cost
# a ping in the middle of acceptance 3 (run 5).
echo 1 >/proc/sys/net/ipv4/ip_forward
setup_netns_c
barrier link
barrier a-up
${installCa}
scope token create "$NET" --uses 1 --registry "${URL}" --ca-file ${CA} --token-file "$SCOPE_IN/admin.token" >/root/b.token
scope join "${URL}" --ca-file ${CA} --network "$NET" --token-file /root/b.token --backend wg --name b --no-start
echo "flavour = kernel" >>/etc/scope/$NET.conf
debug_log /etc/scope/$NET.conf
systemctl start scope@$NET
wait_for 240 ip link show scope0
wait_for 180 scope status --network "$NET" --json
barrier b-up
scope token create "$NET" --uses 1 --registry "${URL}" --ca-file ${CA} --token-file "$SCOPE_IN/admin.token" >/root/c.token
barrier c-go
ip netns exec c /usr/bin/scope join "${URL}" --ca-file ${CA} --network "$NET" --token-file /root/c.token \\
	--backend wg --name c --config-dir /etc/scope-c --state-dir /var/lib/scope-c --no-start
echo "flavour = kernel" >>/etc/scope-c/$NET.conf
start_c
barrier done
wg show scope0
journalctl -q --no-pager -o short-precise -u scope@$NET -u scope-c >"$SCOPE_OUT/journal-b.log"
# Last, so that a failure's tail shows how c fared (CI prints the last 20 lines).
echo "c: $(systemctl is-active scope-c 2>&1)"
journalctl -u scope-c -o cat -n 12 --no-pager
`;

const nmPair: SystemCase = {
  name: "nm-pair",
  description: "NetworkManager backend: profile, user switch, live peers, NM restart, cc.ltgc.Scope1 (2 VMs)",
  guests: () => {
    const files = registryGuestFiles();
    return [
      { script: scriptA, files },
      { script: scriptB, files },
    ];
  },
  check: ([a]) => {
    const ok = (pattern: RegExp, what: string) => expectOutput(a!, pattern, what);
    ok(/^ok: usocket absent$/m, "usocket was not hidden: the case would not test the package's dbus-next");
    ok(/^mesh: a .*, backend networkmanager, /m, "a does not run the networkmanager backend");
    // The plugin with PSKs (nm-facts.ts prints these only when they hold).
    ok(/^ok: create: PSKs live 2\/2, stored 2\/2/m, "PSKs missing after create");
    ok(/^ok: peer add\/remove: PSKs live 2\/2, stored 2\/2/m, "PSKs missing after a peer change");
    ok(/^ok: PSK change: PSKs live 2\/2, stored 2\/2/m, "PSKs wrong after a PSK change");
    ok(/^ok: address change .*PSKs live 2\/2, stored 2\/2/m, "PSKs lost by the plugin's Reapply");
    ok(/^ok: an apply while switched off .* leaves it down$/m, "an apply while off brought the profile up");
    ok(/^fact 1: .*$/m, "fact 1 not recorded");
    ok(/^fact 2: .*$/m, "fact 2 not recorded");
    ok(/^fact 3: .*$/m, "fact 3 not recorded");
    // Acceptance 1.
    ok(
      new RegExp(`^${PROFILE}:wireguard:scope0$`, "m"),
      `nmcli does not list "${PROFILE}" as wireguard on scope0`,
    );
    ok(/^profile type: wireguard$/m, "the profile is not of type wireguard");
    ok(/^ok: scope0 has b's peer$/m, "scope0 lacks b's peer");
    ok(/^ok: the stored profile has b's peer$/m, "the stored profile lacks b's peer");
    ok(/^ok: in-tunnel ping a -> b$/m, "no in-tunnel ping to b");
    // Acceptance 5.
    ok(/^alice GetStatus: a\{sv\} \d+ .*"state" s "running"/m, "a user cannot read the status");
    ok(/^alice GetPeers: aa\{sv\} 1 /m, "a user cannot read the peers");
    ok(/^alice Pause: .*(Rejected send message|Access denied|AccessDenied)/m, "a user was not refused Pause");
    ok(
      /^alice Resume: .*(Rejected send message|Access denied|AccessDenied)/m,
      "a user was not refused Resume",
    );
    ok(/^bob Pause: $/m, "a member of group scope could not Pause");
    ok(/^paused status: .*"state" s "paused" "paused" b true/m, "Pause did not show in the status");
    ok(/^mesh: a .*, paused$/m, "scope status does not say paused");
    ok(/^bob Resume: $/m, "a member of group scope could not Resume");
    ok(/^resumed: "state" s "running"$/m, "Resume did not resume");
    ok(/^StateChanged signals: [2-9]$/m, "no StateChanged signal for pause and resume");
    // Acceptance 2.
    ok(/^down: scope0 gone \d+ ms/m, "scope0 did not go with nmcli connection down");
    ok(/^ok: scope0 still gone 30 s later$/m, "the daemon brought scope0 back");
    ok(/^switched off: "state" s "switched-off"$/m, "the daemon did not pause on the user's switch");
    ok(/^up: pinging b \d+ ms/m, "no ping after nmcli connection up");
    ok(/^switched on: "state" s "running"$/m, "the daemon did not resume on the user's switch");
    // Acceptance 3.
    ok(/^ok: in-tunnel ping a -> c$/m, "no ping to the added peer c");
    ok(/^ok: the stored profile has c's peer$/m, "the stored profile lacks c");
    ok(/^ok: c removed from scope0 and from the stored profile$/m, "c was not removed");
    ok(
      /^running ping verdict: [1-9][0-9]* sent, 0 lost before the last$/m,
      "the running ping to b lost packets while c was added and removed",
    );
    ok(/^ok: b's peer never re-created$/m, "b's peer was re-created by a peer change");
    // Acceptance 4.
    ok(/^ok: the daemon was not restarted$/m, "the daemon restarted with NetworkManager");
    ok(/^ok: pings b after the NetworkManager restart$/m, "no ping after the NetworkManager restart");
    // The profile deleted by hand.
    ok(/^ok: not recreated by itself$/m, "the daemon recreated a deleted profile by itself");
    ok(/deleted outside Scope/, "the deletion was not reported");
    ok(/^deleted: "state" s "switched-off"$/m, "the daemon did not pause after the deletion");
    ok(/^ok: recreated on request and pinging b$/m, "scope recreate did not bring the mesh back");
  },
  // Per VM, sized for TCG on a loaded or slow 2-core host (see networkd-pair); a pass needs far less.
  timeoutMs: 1_800_000,
};
export default nmPair;
