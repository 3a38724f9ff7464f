#!/bin/busybox sh
# /init of the lab guests' initrd: load the modules the root disk needs, mount the ext4 root
# and hand over to its init. The module list (in load order) is /modules/order.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
  insmod "/modules/$m" || echo "vqual-initrd: insmod $m failed" > /dev/console
done < /modules/order
root=/dev/vda
for arg in $(cat /proc/cmdline); do
  case "$arg" in root=*) root="${arg#root=}" ;; esac
done
n=0
while [ ! -b "$root" ] && [ "$n" -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
if ! mount -t ext4 -o rw "$root" /newroot; then
  echo "vqual-initrd: cannot mount $root; dropping to a shell" > /dev/console
  exec sh
fi
umount /proc /sys
# The root's init expects a populated /dev: keep the devtmpfs.
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/busybox init
