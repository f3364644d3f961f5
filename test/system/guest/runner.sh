#!/bin/sh
# Installed in the image as /usr/local/sbin/scope-test-runner and started by
# scope-test.service. It runs the per-run script the host wrote into the 9p
# share and leaves stdout, stderr and the exit code there. The unit powers the
# VM off when this returns, whatever happened, so the host never waits for a
# timeout on a guest that merely failed.
set -u
mkdir -p /mnt/scope /project
# msize raises the 9p payload from the 8 KiB default: far fewer round trips.
opts=trans=virtio,version=9p2000.L,msize=262144
if ! mount -t 9p -o "$opts" scope /mnt/scope; then
	echo "scope-test: cannot mount the 9p share 'scope'" >&2
	exit 1
fi
# The project share is optional and read-only; cache=loose is safe because the
# host does not change it during a run, and makes node's module loading fast.
mount -t 9p -o "$opts,ro,cache=loose" project /project 2>/dev/null || rmdir /project
out=/mnt/scope/out
mkdir -p "$out"
# Guest-side boot time: kernel start to this point.
cut -d' ' -f1 /proc/uptime >"$out/boot-seconds"
echo "scope-test: running /mnt/scope/run-in-guest.sh"
bash /mnt/scope/run-in-guest.sh >"$out/stdout" 2>"$out/stderr" </dev/null
rc=$?
echo "scope-test: run-in-guest.sh exited $rc"
# Written last and renamed, so the host reads either no exit code or a whole one.
echo "$rc" >"$out/exit-code.tmp" && mv "$out/exit-code.tmp" "$out/exit-code"
sync
exit 0
