#!/bin/busybox sh
# init of the lab's smallest guest: enough to boot under TCG and be live-migrated.
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "vqual-lab-guest ready" > /dev/console
n=0
while :; do
  n=$((n + 1))
  echo "vqual-lab-guest tick $n" > /dev/console
  /bin/busybox sleep 5
done
