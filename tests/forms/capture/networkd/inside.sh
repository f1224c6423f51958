#!/bin/sh
# Run by networkd.py as `ip netns exec NS unshare -m inside.sh NETWORK OUT`:
# systemd-networkd with a private /run/systemd and /run/udev (no systemd as
# PID 1 and no udevd here; see /work/shared/platform.md), under strace.
set -e
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/udev
mkdir -p /run/systemd/network /run/udev/data /run/systemd/netif
cp "$1" /run/systemd/network/
# The stand-in udev database: every link is initialized.
for i in /sys/class/net/*; do echo "I:1000000" >"/run/udev/data/n$(cat "$i/ifindex")"; done
exec timeout 8 strace -f -e trace=sendmsg,sendto,sendmmsg -e write=all -xx -s 4096 -o "$2" \
	/lib/systemd/systemd-networkd
