#!/bin/sh
# Runs inside the freshly debootstrapped rootfs (chroot, stdin) to turn it into
# the test image. Everything the image contains beyond the package list is
# here, and this text is part of the cache key: edit it and the image rebuilds.
set -eu

echo scope-vm >/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 scope-vm\n::1 localhost ip6-localhost ip6-loopback\n' >/etc/hosts
# Password-less root on the serial console, for poking at a VM by hand.
passwd -d root
# The root disk is a throw-away -snapshot overlay: no fsck, no journal worries.
echo '/dev/vda / ext4 rw,errors=remount-ro 0 0' >/etc/fstab

# The initrd only has to mount /dev/vda: MODULES=list with exactly the virtio
# block and ext4 modules (plus the crc32c ext4 asks for) gives a ~10x smaller
# initrd than the default MODULES=most, which TCG unpacks noticeably faster.
# The rest, wireguard and 9p included, load from the root fs after pivot.
sed -i 's/^MODULES=.*/MODULES=list/' /etc/initramfs-tools/initramfs.conf
cat >>/etc/initramfs-tools/modules <<'MODS'
virtio_pci
virtio_blk
virtio_net
crc32c_generic
ext4
9p
9pnet_virtio
MODS
update-initramfs -u -k all

# networkd is enabled but has no .network file, so it manages no link until a
# test (or the networkd backend) writes one. NetworkManager must not grab the
# test links with DHCP "Wired connection" profiles either.
systemctl enable systemd-networkd.service
mkdir -p /etc/NetworkManager/conf.d
printf '[main]\nno-auto-default=*\n' >/etc/NetworkManager/conf.d/90-scope-test.conf

# Units that only cost boot time in a VM that lives one minute.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
	systemd-networkd-wait-online.service NetworkManager-wait-online.service; do
	systemctl mask "$unit" >/dev/null 2>&1 || true
done

cat >/etc/systemd/system/scope-test.service <<'UNIT'
[Unit]
Description=Scope system test (runs /mnt/scope/run-in-guest.sh, then powers off)
After=dbus.service systemd-networkd.service NetworkManager.service systemd-modules-load.service
# Power off when done either way: the host reads the result from the share.
# poweroff-force skips the orderly stop of every service, which costs seconds
# under TCG; the root disk is a discarded snapshot so nothing needs saving.
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/scope-test-runner
TimeoutStartSec=infinity
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable scope-test.service
