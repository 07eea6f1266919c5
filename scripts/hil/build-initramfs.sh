#!/usr/bin/env bash
# Builds the hardware-in-the-loop guest (npm run test:hil): Debian's kernel and a tiny initramfs made of busybox-static,
# the kernel's own modules that the guest needs (with their dependencies, in load order) and scripts/hil/init.sh.
#
# The kernel package is fetched with `apt-get download` (never installed on the host) and unpacked under the cache
# directory, so the host needs only apt, dpkg-deb, busybox-static and xz/zstd. The result is cached by kernel version:
#   <cache>/vmlinuz-<version>  <cache>/initramfs-<version>.img  <cache>/current (the version last built)
# Usage: scripts/hil/build-initramfs.sh [cache dir, default var/hil]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="$(realpath -m "${1:-$here/../../var/hil}")"
mkdir -p "$cache"
cd "$cache"

# linux-image-amd64 is a metapackage: the kernel is the package it depends on (linux-image-6.1.0-NN-amd64).
pkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$pkg" ] || { echo "build-initramfs: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2; exit 1; }
version="${pkg#linux-image-}"
if [ -f "vmlinuz-$version" ] && [ -f "initramfs-$version.img" ] && [ "initramfs-$version.img" -nt "$here/init.sh" ] &&
  [ "initramfs-$version.img" -nt "$0" ]; then
  echo "$version" > current
  echo "build-initramfs: cached $cache/initramfs-$version.img"
  exit 0
fi

# busybox-static's binary: it runs in the initramfs before anything else is there.
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "build-initramfs: busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }

if ! ls "$pkg"_*.deb >/dev/null 2>&1; then
  echo "build-initramfs: apt-get download $pkg"
  apt-get download "$pkg" >/dev/null 2>apt-download.err || { cat apt-download.err >&2; exit 1; }
fi
rm -rf kernel-tree root
mkdir kernel-tree root
dpkg-deb -x "$(ls "$pkg"_*.deb | head -1)" kernel-tree
cp "kernel-tree/boot/vmlinuz-$version" "vmlinuz-$version"
moddir="kernel-tree/lib/modules/$version/kernel"

# What the guest needs: virtio (PCI, console, 9p), the xHCI controller, USB serial (FTDI) and storage, SCSI disks,
# overlayfs, and the recorder filesystems (vfat with the code pages dockd's mount options name, exfat, ext4).
wanted=(virtio_pci virtio_console xhci_pci usb_storage sd_mod crct10dif_generic ftdi_sio 9pnet_virtio 9p overlay
  vfat nls_ascii nls_cp437 nls_iso8859_1 nls_utf8 exfat crc32c_generic ext4)

declare -A path_of=()
while IFS= read -r f; do
  n="$(basename "$f")"
  n="${n%%.ko*}"
  path_of["${n//-/_}"]="$f"
done < <(find "$moddir" -name '*.ko*')

declare -A seen=()
order=()
add() { # depth-first: dependencies first
  local name="${1//-/_}" f deps d
  [ -n "${seen[$name]:-}" ] && return 0
  seen[$name]=1
  f="${path_of[$name]:-}"
  [ -n "$f" ] || return 0 # built into the kernel
  case "$f" in
    *.xz) xz -dc "$f" > "root/$name.ko" ;;
    *.zst) zstd -qdc "$f" > "root/$name.ko" ;;
    *) cp "$f" "root/$name.ko" ;;
  esac
  deps="$(tr '\0' '\n' < "root/$name.ko" | grep -a '^depends=' | head -1 | cut -d= -f2)"
  for d in ${deps//,/ }; do add "$d"; done
  order+=("$name")
}
for m in "${wanted[@]}"; do
  [ -n "${path_of[${m//-/_}]:-}" ] || grep -q "/${m//_/[-_]}.ko" "kernel-tree/lib/modules/$version/modules.builtin" ||
    { echo "build-initramfs: module $m is in neither $pkg's modules nor its built-ins" >&2; exit 1; }
  add "$m"
done
mkdir -p root/lib/modules root/bin
mv root/*.ko root/lib/modules/
printf '%s\n' "${order[@]}" > root/lib/modules/load-order
cp "$busybox" root/bin/busybox
cp "$here/init.sh" root/init
chmod 755 root/init root/bin/busybox
(cd root && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "../initramfs-$version.img.tmp")
mv "initramfs-$version.img.tmp" "initramfs-$version.img"
rm -rf kernel-tree root
echo "$version" > current
echo "build-initramfs: built $cache/initramfs-$version.img (${#order[@]} modules)"
