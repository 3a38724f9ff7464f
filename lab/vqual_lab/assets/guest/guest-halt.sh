#!/bin/sh
# Runs at poweroff/reboot (busybox init's shutdown entry).
for f in /run/sshd.pid /run/qemu-ga.pid; do
  [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
done
sync
mount -o remount,ro / 2>/dev/null
exit 0
