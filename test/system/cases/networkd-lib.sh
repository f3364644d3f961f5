# Shell helpers shared by the networkd-* system cases. Guest scripts source it
# from the read-only project share (/project/test/system/cases/networkd-lib.sh);
# it is not a case itself (run.ts only loads the compiled *.js files here).

NET=mesh
NDDIR=/etc/systemd/network
REG_PORT=8470

# On any failure, what the services said: the host only sees stdout/stderr.
diag() {
	{ set +x; } 2>/dev/null
	echo "--- diagnostics (exit $1) ---" >&2
	systemctl --no-pager status 'scope*' systemd-networkd >&2 || true
	journalctl -q --no-pager -o short-monotonic -n 150 \
		-u scope-registry -u "scope@$NET" -u scope-c -u systemd-networkd >&2 || true
	ip -br link >&2 || true
	wg show >&2 2>/dev/null || true
}
trap 'rc=$?; [ $rc -eq 0 ] || diag $rc' EXIT

# `scope` as packaged (/usr/bin/scope, the path scope@.service runs), the real
# unit, and a networkctl wrapper earlier in PATH than /usr/bin (in our PATH and
# in systemd's default one for units) that logs every call to the journal, so
# a case can count the daemon's `networkctl reload`s instead of inferring them.
install_scope() {
	ln -sf /project/dist/src/cli/main.js /usr/bin/scope
	cat >/usr/local/sbin/networkctl <<-'WRAP'
		#!/bin/sh
		logger -t scope-test-networkctl -- "$*"
		exec /usr/bin/networkctl "$@"
	WRAP
	chmod 755 /usr/local/sbin/networkctl
	cp /project/packaging/systemd/scope@.service /etc/systemd/system/
	systemctl daemon-reload
}

# debug_log CONF: the daemon logs every decision (paths, applies, triggers) to the journal.
debug_log() {
	sed -i '/^\[daemon\]/a log_level = debug' "$1"
}

# Post-mortem traces of a live change, left in the share next to stdout (the
# host keeps them with the run): a timestamped ping that reports each lost
# reply (-O) and a `wg show IFACE dump` every 0.5 s, so a loss can be matched
# to what happened to the peer at that moment.
# start_watch IFACE TARGET_IP; stop_watch writes the journals too.
start_watch() {
	ping -O -D -i 0.2 "$2" >"$SCOPE_OUT/ping.log" 2>&1 &
	WATCH_PING=$!
	(while :; do
		echo "@ $(date +%s.%N)"
		wg show "$1" dump
		sleep 0.5
	done) >"$SCOPE_OUT/wg-dump.log" 2>&1 &
	WATCH_DUMP=$!
	WATCH_SINCE=$(date +%s)
}
stop_watch() {
	kill -INT "$WATCH_PING"
	wait "$WATCH_PING" || true
	kill "$WATCH_DUMP"
	wait "$WATCH_DUMP" 2>/dev/null || true
	journalctl -q --no-pager -o short-precise --since "@$WATCH_SINCE" >"$SCOPE_OUT/journal.log" || true
	# Every line about a lost reply or a send error, for the host's report.
	grep -E 'no answer|rror|nreachable|sendmsg' "$SCOPE_OUT/ping.log" | head -n 40 || true
	echo "running ping: $(grep 'packet loss' "$SCOPE_OUT/ping.log")"
	# Lost = a sequence number never answered. Stopping the ping always
	# leaves its last request in flight (SIGINT does not wait for the reply),
	# so that one is not judged; every earlier one must have an answer.
	awk '/bytes from/ { match($0, /icmp_seq=[0-9]+/); ok[substr($0, RSTART + 9, RLENGTH - 9)] = 1 }
		/packets transmitted/ { sent = $1 }
		END { lost = 0; for (i = 1; i < sent; i++) if (!(i in ok)) lost++
			printf "running ping verdict: %d sent, %d lost before the last\n", sent, lost }' "$SCOPE_OUT/ping.log"
}

# peer_kept PUBKEY: in every snapshot of start_watch's wg dump the peer is
# present and its rx/tx counters never go down. A peer that was removed and
# re-added (a lost session) misses a snapshot or restarts its counters; a
# before/after reading alone cannot tell that from traffic that grew again.
# The last snapshot may be cut short by stop_watch and is not judged.
peer_kept() {
	awk -v k="$1" '
		function judge() { if (n++ && !seen) gone++ }
		/^@ / { judge(); seen = 0; next }
		$1 == k { seen = 1; if ($6 < rx || $7 < tx) reset++; rx = $6; tx = $7 }
		END { printf "peer %.8s: %d snapshots, missing in %d, counters reset %d times\n", k, n - 1, gone, reset
			exit !(n > 2 && !gone && !reset) }' "$SCOPE_OUT/wg-dump.log"
}

# How many `networkctl reload`s anyone ran so far (cases compare two readings).
reloads() {
	journalctl -q -t scope-test-networkctl -o cat | grep -c '^reload' || true
}

# wait_for SECONDS CMD...: poll until CMD succeeds. Untraced: a TCG guest may
# poll for a minute and the trace would bury the interesting lines.
wait_for() {
	{ set +x; } 2>/dev/null
	local secs=$1 end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= end)); then
			echo "timed out after ${secs}s waiting for: $*" >&2
			set -x
			return 1
		fi
		sleep 0.5
	done
	set -x
}

# jget EXPR: evaluate a JS expression over the JSON on stdin (bound to j); no jq in the image.
jget() {
	node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{const j=JSON.parse(s);const v=eval(process.argv[1]);console.log(typeof v==="string"?v:JSON.stringify(v))})' "$1"
}

# The registry as a transient unit: its log is in the journal, and it outlives
# nothing it should not (a soft reboot stops it like any other unit).
start_registry() { # LISTEN_IP
	systemctl stop scope-registry 2>/dev/null || true
	rm -f /run/scope-registry-warn /run/scope-registry-retried
	# Once (CI, networkd-reboot) the registry's bind failed with EADDRNOTAVAIL
	# 22 s after 10.99.0.1 was added to veth-c: nothing of Scope runs at that
	# point, so say what the host had, and put the address back if it went.
	if ! has_local_ip "$1"; then
		echo "WARN: $1 is not a local address before the registry starts:"
		ip -br addr
		if [ "$1" = 10.99.0.1 ]; then ip addr add 10.99.0.1/24 dev veth-c; fi
	fi
	systemd-run -q --unit=scope-registry --collect \
		/usr/bin/scope registry --listen "$1:$REG_PORT" --data /var/lib/scope-registry
	local rc=0
	wait_for 240 registry_up "$1" || rc=$?
	# wait_for hides what registry_up says; show it.
	if [ -s /run/scope-registry-warn ]; then cat /run/scope-registry-warn >&2; fi
	return $rc
}
has_local_ip() { ip -o -4 addr show | grep -qF " $1/"; }
# The admin socket is there; or the registry failed: show why, restore the address, try once more.
registry_up() {
	test -S /run/scope/registry/admin.sock && return 0
	# --collect unloads a failed unit at once, so "gone" is what failure looks like.
	systemctl -q is-active scope-registry && return 1
	[ -e /run/scope-registry-retried ] && return 1
	touch /run/scope-registry-retried
	{
		echo "WARN: the registry failed to start; addresses now:"
		ip -br addr
		journalctl -u scope-registry -o cat -n 5 --no-pager
	} >>/run/scope-registry-warn 2>&1
	if [ "$1" = 10.99.0.1 ] && ! has_local_ip "$1"; then ip addr add 10.99.0.1/24 dev veth-c; fi
	systemd-run -q --unit=scope-registry --collect \
		/usr/bin/scope registry --listen "$1:$REG_PORT" --data /var/lib/scope-registry
	return 1
}

# A second edge host inside this VM: network namespace "c" behind a veth pair
# (10.99.0.1 here, 10.99.0.2 inside), default route back through this host.
# Idempotent, so a case can call it again after a soft reboot.
setup_netns_c() {
	ip netns del c 2>/dev/null || true
	ip link del veth-c 2>/dev/null || true
	ip netns add c
	ip link add veth-c type veth peer name eth0 netns c
	ip addr add 10.99.0.1/24 dev veth-c
	ip link set veth-c up
	ip -n c addr add 10.99.0.2/24 dev eth0
	ip -n c link set eth0 up
	ip -n c link set lo up
	ip -n c route add default via 10.99.0.1
}

# join_c REGISTRY_URL [JOIN_FLAGS...]: join identity "c" from the namespace with the kernel wg
# backend (its own config and state dirs, so it never touches this host's).
join_c() {
	scope token create "$NET" --uses 1 >/root/c.token
	ip netns exec c /usr/bin/scope join "$@" --network "$NET" --token-file /root/c.token \
		--backend wg --name c --config-dir /etc/scope-c --state-dir /var/lib/scope-c --no-start
	echo "flavour = kernel" >>/etc/scope-c/$NET.conf
	debug_log /etc/scope-c/$NET.conf
}

start_c() {
	systemctl stop scope-c 2>/dev/null || true
	systemd-run -q --unit=scope-c --collect \
		ip netns exec c /usr/bin/scope daemon --config /etc/scope-c/$NET.conf
}

pubkey_of() { # STATE_DIR
	wg pubkey <"$1/wg.key"
}

# has_handshake IFACE PUBKEY [NETNS]: WireGuard completed a handshake with the peer.
has_handshake() {
	local ns=()
	[ -z "${3:-}" ] || ns=(ip netns exec "$3")
	"${ns[@]}" wg show "$1" latest-handshakes | awk -v k="$2" '$1 == k && $2 > 0 { ok = 1 } END { exit !ok }'
}

# peer_dump PUBKEY: "latest-handshake rx-bytes" of one peer of scope0.
peer_dump() {
	wg show scope0 dump | awk -v k="$1" '$1 == k { print $5, $6 }'
}

tunnel_addr_of() { # PEER_NAME (asked over the registry's admin socket)
	scope peer list "$NET" --json | jget "(Array.isArray(j) ? j : j.peers).find((p) => p.name === '$1').address"
}

# Acceptance 1 on the files and networkd's view; prints "ok: ..." lines the host checks.
check_networkd_files() { # EXPECTED_PEER_COUNT
	local netdev=$NDDIR/50-scope-$NET.netdev
	networkctl status scope0 --no-pager || true
	local state
	state=$(networkctl status scope0 --json=short | jget 'const l = j.Interfaces ? j.Interfaces.find((i) => i.Name === "scope0") : j; `${l.OperationalState} ${l.AdministrativeState ?? l.SetupState}`')
	echo "scope0 state: $state"
	case "$state" in
	routable\ configured | carrier\ configured | degraded\ configured) echo "ok: networkctl: scope0 configured ($state)" ;;
	*) echo "FAIL: networkctl state of scope0 is '$state'" && return 1 ;;
	esac
	cat "$netdev"
	local peers
	peers=$(grep -c '^\[WireGuardPeer\]' "$netdev")
	[ "$peers" -eq "$1" ] || { echo "FAIL: $netdev has $peers [WireGuardPeer], want $1" && return 1; }
	# Every live peer has its own section (by public key), not just the right count.
	local k
	for k in $(wg show scope0 peers); do
		grep -qx "PublicKey=$k" "$netdev" || { echo "FAIL: live peer $k not in $netdev" && return 1; }
	done
	echo "ok: netdev lists every peer ($peers)"
	stat -c '%U:%G %a %n' "$NDDIR"/50-scope-$NET.*
	local bad
	bad=$(stat -c '%U:%G %a %n' "$NDDIR"/50-scope-$NET.* | grep -v '^root:systemd-network 640 ' || true)
	[ -z "$bad" ] || { echo "FAIL: owner/mode: $bad" && return 1; }
	echo "ok: files root:systemd-network 0640"
	# Untraced: the key must not reach the logs through xtrace either.
	{ set +x; } 2>/dev/null
	local key
	key=$(cat /var/lib/scope/$NET/wg.key)
	if grep -qF -- "$key" "$netdev"; then echo "FAIL: private key inside $netdev" && return 1; fi
	grep -qF -- "$key" "$NDDIR/50-scope-$NET.key" || { echo "FAIL: key file lacks the key" && return 1; }
	set -x
	grep -q '^PrivateKeyFile=' "$netdev"
	echo "ok: private key only in the .key file"
}

# PSK rotation (issue 11). psk_of PUBKEY: scope0's live PSK for the peer
# ("(none)" without one); psk_hash the same as a short hash (secrets stay out of the log).
psk_of() {
	wg show scope0 preshared-keys | awk -v k="$1" '$1 == k { print $2 }'
}
psk_set() { # PUBKEY
	local p
	p=$(psk_of "$1")
	[ -n "$p" ] && [ "$p" != "(none)" ]
}
psk_changed() { # PUBKEY OLD
	local p
	p=$(psk_of "$1")
	[ -n "$p" ] && [ "$p" != "(none)" ] && [ "$p" != "$2" ]
}
# check_psk_file PUBKEY: one .psk file holds the live PSK, root:systemd-network 0640.
check_psk_file() {
	local live f
	live=$(psk_of "$1")
	for f in "$NDDIR"/50-scope-$NET.peer-*.psk; do
		[ -f "$f" ] || continue
		if [ "$(cat "$f")" = "$live" ]; then
			echo "psk file: $(stat -c '%U:%G %a' "$f")"
			return 0
		fi
	done
	echo "no .psk file holds the live PSK" >&2
	return 1
}
