#!/bin/busybox sh
# PID 1 of the hardware-in-the-loop guest (scripts/hil/build-initramfs.sh puts it in the initramfs as /init).
# Loads the modules, mounts the host's tree (9p, read-only) under a tmpfs overlay, chroots into it, starts udevd there
# and runs the guest agent (scripts/hil/guest-agent.mjs) with the host's own Node; powers off when the agent ends.
# Kernel command line: hil.node=<node binary> hil.agent=<agent script> hil.spec=<spec file> (host paths).
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /host /rw /newroot
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "hil-init: $* (uptime $(up) s)" > /dev/console; }
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
die() { say "$*"; poweroff -f; }

say "kernel up"
for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m.ko" 2>/dev/null || say "insmod $m failed"
done
say "modules loaded"
ip link set lo up || say "cannot bring the loopback interface up"

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose host /host || die "cannot mount the host tree (9p)"
mount -t tmpfs -o size=75% tmpfs /rw || die "cannot mount the tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || die "cannot mount the overlay"
for d in proc sys dev run; do mkdir -p "/newroot/$d"; done
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts && mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/run
say "host tree mounted (9p + tmpfs overlay)"

node="$(arg hil.node)"
agent="$(arg hil.agent)"
spec="$(arg hil.spec)"
[ -n "$node" ] && [ -n "$agent" ] && [ -n "$spec" ] || die "hil.node, hil.agent and hil.spec must be on the kernel command line"
in_root() { chroot /newroot /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

# The usb package's libusb listens for hotplug on udevd's netlink group, not the kernel's: without a udevd it hears
# nothing. So the host's systemd-udevd (package udev) runs in the chroot; --daemon returns once its sockets are bound.
# udevadm ignores requests in a chroot unless SYSTEMD_IGNORE_CHROOT is set.
if in_root /lib/systemd/systemd-udevd --daemon > /dev/console 2>&1; then
  in_root SYSTEMD_IGNORE_CHROOT=1 udevadm settle --timeout=60 > /dev/console 2>&1 || say "udevadm settle failed"
  say "udevd started"
else
  say "cannot start systemd-udevd: libusb hotplug will deliver no events"
fi

in_root "$node" "$agent" "$spec" > /dev/console 2>&1
say "guest agent exited ($?)"
sync
poweroff -f
