// One VM, two boots: acceptance 3 of the networkd backend (and acceptance 1
// again with an explicit `backend = networkd`).
//
// The case declares one reboot, so QEMU runs without -no-reboot and the
// guest's `systemctl reboot` is a real one (new kernel, nothing kept but the
// disk, which -snapshot keeps for the life of the QEMU process).
// scope-test.service runs this script again after the reboot; a marker file
// on the disk says which phase this is.
//
// Phase 1: registry and namespace "c" (wg backend) in this VM, daemon with
// backend = networkd under the real scope@.service, started but not enabled;
// files and networkctl checked; daemon stopped (the link must survive that);
// the endpoints WireGuard uses are noted; reboot.
// Phase 2: scope0 is back with its peers, their endpoints and the key while
// the daemon has not run in this boot, and c handshakes over it; then the
// daemon starts while a ping runs: same ifindex, no `networkctl reload`, no
// link down, same peers, c's session not re-created, no packet lost.
import { expectOutput, type SystemCase } from "../case.js";

const URL = "http://10.99.0.1:8470";
const STATE = "/var/lib/scope-test";
const DROPIN = "/etc/systemd/system/scope-test.service.d/50-reboot.conf";

const script = `
source /project/test/system/cases/networkd-lib.sh
mkdir -p ${STATE}

status_connected() {
	[ "$(scope status --network "$NET" --json | jget j.registry)" = connected ]
}

phase1() {
	install_scope
	setup_netns_c
	start_registry 10.99.0.1
	scope network create "$NET" --cidr 10.88.0.0/16
	scope token create "$NET" --uses 1 >/root/a.token
	scope join "${URL}" --insecure --network "$NET" --token-file /root/a.token --backend networkd --name a --no-start
	grep -x 'type = networkd' /etc/scope/$NET.conf
	debug_log /etc/scope/$NET.conf
	systemctl start scope@$NET
	join_c "${URL}" --insecure
	start_c
	C_KEY=$(pubkey_of /var/lib/scope-c/$NET)
	wait_for 240 has_handshake scope0 "$C_KEY"
	ping -c 2 -i 0.3 -w 30 "$(tunnel_addr_of c)"
	check_networkd_files 1
	wg show scope0 peers | sort >${STATE}/peers
	wg show scope0 endpoints | sort >${STATE}/endpoints
	cat ${STATE}/endpoints
	grep -q '^Endpoint=' $NDDIR/50-scope-$NET.netdev && echo "ok: netdev has the endpoints"
	systemctl stop scope@$NET
	ip link show scope0 && echo "ok: scope0 outlives a daemon stop"
	# Nothing but networkd may bring scope0 back after the reboot.
	[ "$(systemctl is-enabled scope@$NET 2>&1 || true)" != enabled ]
	# The reboot stops this run: it must neither power off (Success/FailureAction)
	# nor count as the end of the test.
	mkdir -p "$(dirname ${DROPIN})"
	printf '[Unit]\\nSuccessAction=none\\nFailureAction=none\\n' >${DROPIN}
	systemctl daemon-reload
	cat /proc/sys/kernel/random/boot_id >${STATE}/boot-id
	echo 2 >${STATE}/phase
	# The runner truncates stdout/stderr when it starts phase 2: keep phase 1's.
	cp "$SCOPE_OUT/stdout" ${STATE}/phase1.stdout
	cp "$SCOPE_OUT/stderr" ${STATE}/phase1.stderr
	sync
	systemctl --no-block reboot
	sleep infinity
}

phase2() {
	cat ${STATE}/phase1.stdout
	cat ${STATE}/phase1.stderr >&2
	echo "=== phase 2, after the reboot ==="
	# Power off again when this phase ends.
	rm -f ${DROPIN}
	systemctl daemon-reload
	# A soft reboot or a restarted script would keep the kernel, and its boot id.
	[ "$(cat /proc/sys/kernel/random/boot_id)" != "$(cat ${STATE}/boot-id)" ] && echo "ok: a new kernel boot"
	wait_for 240 ip link show scope0
	if [ -n "$(journalctl -b -q -o cat -u scope@$NET)" ]; then echo "FAIL: the daemon ran in this boot" && return 1; fi
	echo "ok: scope0 is back and the daemon has not run ($(systemctl is-active scope@$NET || true))"
	wg show scope0
	wg show scope0 peers | sort | diff ${STATE}/peers - && echo "ok: peers from the files"
	wg show scope0 endpoints | sort | diff ${STATE}/endpoints - && echo "ok: endpoints from the files"
	[ "$(wg show scope0 public-key)" = "$(pubkey_of /var/lib/scope/$NET)" ] && echo "ok: key from the key file"
	check_networkd_files 1

	# c and the registry died with the old kernel like everything else.
	setup_netns_c
	start_registry 10.99.0.1
	start_c
	C_KEY=$(pubkey_of /var/lib/scope-c/$NET)
	C_ADDR=$(tunnel_addr_of c)
	wait_for 240 has_handshake scope0 "$C_KEY"
	ping -c 2 -i 0.3 -w 30 "$C_ADDR" && echo "ok: tunnel works before the daemon starts"

	IFINDEX=$(cat /sys/class/net/scope0/ifindex)
	BEFORE=$(peer_dump "$C_KEY")
	RELOADS=$(reloads)
	SINCE=$(date +%s)
	start_watch scope0 "$C_ADDR"
	systemctl start scope@$NET
	wait_for 240 status_connected
	# Time for the first reconcile to land, and for any damage to show.
	sleep 10
	stop_watch
	peer_kept "$C_KEY" && echo "ok: c's peer never re-created"
	AFTER=$(peer_dump "$C_KEY")
	echo "c before: $BEFORE; after: $AFTER"
	read -r HS0 RX0 <<<"$BEFORE"
	read -r HS1 RX1 <<<"$AFTER"
	if [ "$HS1" = "$HS0" ] || [ $((HS1 - HS0)) -ge 120 ]; then echo "ok: c's handshake kept"; fi
	if [ "$RX1" -ge "$RX0" ]; then echo "ok: c's rx counter not reset"; fi
	echo "networkctl reloads by the starting daemon: $(($(reloads) - RELOADS))"
	[ "$(cat /sys/class/net/scope0/ifindex)" = "$IFINDEX" ] && echo "ok: scope0 ifindex unchanged"
	wg show scope0 peers | sort | diff ${STATE}/peers - && echo "ok: peers unchanged"
	journalctl -u systemd-networkd --since "@$SINCE" -o cat | grep scope0 | tee /root/networkd.log || true
	grep -Eq 'Link DOWN|Lost carrier|Link removed|failed' /root/networkd.log || echo "ok: networkd saw no flap"
	journalctl -u scope@$NET -o cat | tail -n 15
	scope status --network "$NET"
}

if [ -e ${STATE}/phase ]; then phase2; else phase1; fi
`;

const networkdReboot: SystemCase = {
  name: "networkd-reboot",
  description:
    "networkd backend: scope0 back from the files after a reboot, daemon reconciles without a flap",
  guests: () => [{ script }],
  check: ([vm]) => {
    expectOutput(vm!, /ok: networkctl: scope0 configured/, "networkctl does not show scope0 configured");
    expectOutput(vm!, /ok: files root:systemd-network 0640/, "file owner/mode wrong");
    expectOutput(vm!, /ok: private key only in the .key file/, "private key placement wrong");
    expectOutput(vm!, /ok: scope0 outlives a daemon stop/, "stopping the daemon removed scope0");
    expectOutput(vm!, /ok: netdev has the endpoints/, "the .netdev has no Endpoint= lines");
    expectOutput(vm!, /=== phase 2/, "phase 2 never ran (reboot failed?)");
    expectOutput(vm!, /ok: a new kernel boot/, "phase 2 did not run after a real reboot");
    expectOutput(vm!, /ok: scope0 is back and the daemon has not run/, "scope0 not back from the files");
    expectOutput(vm!, /ok: peers from the files/, "peers differ after the reboot");
    expectOutput(vm!, /ok: endpoints from the files/, "endpoints differ after the reboot");
    expectOutput(vm!, /ok: key from the key file/, "wrong key after the reboot");
    expectOutput(vm!, /ok: tunnel works before the daemon starts/, "no tunnel from the files alone");
    expectOutput(
      vm!,
      /^running ping verdict: [1-9][0-9]* sent, 0 lost before the last$/m,
      "the daemon's start cost packets",
    );
    expectOutput(vm!, /ok: c's handshake kept/, "the daemon's start re-handshook c");
    expectOutput(vm!, /ok: c's rx counter not reset/, "the daemon's start re-created c's peer");
    expectOutput(vm!, /ok: c's peer never re-created/, "the daemon's start removed or re-created c's peer");
    expectOutput(vm!, /^networkctl reloads by the starting daemon: 0$/m, "the daemon reloaded networkd");
    expectOutput(vm!, /ok: scope0 ifindex unchanged/, "scope0 was re-created by the daemon");
    expectOutput(vm!, /ok: peers unchanged/, "the daemon changed the peer list");
    expectOutput(vm!, /ok: networkd saw no flap/, "networkd logged scope0 going down");
  },
  // Per VM, sized for TCG on a loaded 2-core host: at load 10-16 a boot took
  // 107-190 s and each `scope` CLI call 10-60 s; a pass needs far less.
  timeoutMs: 1_500_000,
  reboots: 1,
};
export default networkdReboot;
