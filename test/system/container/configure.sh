#!/bin/sh
# Runs in a chroot of the freshly debootstrapped container rootfs (stdin).
# This text is part of the rootfs cache key: edit it and the rootfs rebuilds.
set -eu

# Offline: the only apt source is the local repository that packaging/build.sh
# makes, bound read-only at /srv/scope-apt by the test.
rm -f /etc/apt/sources.list
mkdir -p /etc/apt/sources.list.d
echo 'deb [trusted=yes] file:/srv/scope-apt ./' >/etc/apt/sources.list.d/scope-local.list
passwd -d root

# Units that only cost time in a container that lives a minute.
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
	systemd-tmpfiles-clean.timer man-db.timer console-getty.service; do
	systemctl mask "$unit" >/dev/null 2>&1 || true
done

# host0 (the veth on the test's bridge) gets the address the test wrote to
# /etc/scope-test/addr before the first boot; before network-online.target,
# which Scope's units wait for.
cat >/etc/systemd/system/scope-test-net.service <<'UNIT'
[Unit]
Description=Scope test link address on host0
Before=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'ip link set host0 up && ip addr replace "$(cat /etc/scope-test/addr)" dev host0'

[Install]
WantedBy=multi-user.target network-online.target
UNIT
systemctl enable scope-test-net.service
