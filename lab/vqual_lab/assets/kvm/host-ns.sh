#!/bin/sh
# PID 1 of one lab KVM host's namespaces (started by `unshare --mount --uts --pid --fork`),
# before it becomes the host's init: mounts the host's root filesystem and what a Linux
# host needs inside it, then chroots and execs vqual-init, which stays PID 1 and reaps.
# Every mount made here lives in this private mount namespace only, so it disappears with
# the namespace: nothing is left on the machine when PID 1 ends.
# Arguments: hostname base upper work root shared_dir shared_mnt repo_dir repo_mnt
set -eu
host=$1 base=$2 upper=$3 work=$4 root=$5 shared=$6 shared_mnt=$7 repo=$8 repo_mnt=$9

mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$base,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"

# A private /dev: the usual nodes, its own devpts instance (QEMU allocates PTYs there).
mount -t tmpfs -o mode=0755,size=4m,nosuid tmpfs "$root/dev"
d=$root/dev
mknod -m 666 "$d/null" c 1 3; mknod -m 666 "$d/zero" c 1 5; mknod -m 666 "$d/full" c 1 7
mknod -m 666 "$d/random" c 1 8; mknod -m 666 "$d/urandom" c 1 9; mknod -m 666 "$d/tty" c 5 0
mkdir -m 755 "$d/net"; mknod -m 666 "$d/net/tun" c 10 200
# This host's own /dev/kvm node, group kvm and 0660 as libvirt expects: that keeps libvirt
# from re-probing QEMU on every define, without touching the machine's /dev/kvm.
kvm_gid=$(awk -F: '$1 == "kvm" { print $3 }' "$root/etc/group")
mknod -m 660 "$d/kvm" c 10 232; chgrp "${kvm_gid:-0}" "$d/kvm"
mkdir -m 755 "$d/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$d/pts"
ln -s pts/ptmx "$d/ptmx"
mkdir -m 1777 "$d/shm"; mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d/shm"
ln -s /proc/self/fd "$d/fd"; ln -s /proc/self/fd/0 "$d/stdin"
ln -s /proc/self/fd/1 "$d/stdout"; ln -s /proc/self/fd/2 "$d/stderr"

mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mkdir -p "$root/run/lock" "$root/tmp"
# Storage every host sees at the same path (guest kernels, disks), and the lab's package
# repository, read-only.
mkdir -p "$root$shared_mnt" "$root$repo_mnt"
mount --bind "$shared" "$root$shared_mnt"
mount --bind "$repo" "$root$repo_mnt"
mount -o remount,bind,ro "$root$repo_mnt"

hostname "$host"
exec chroot "$root" /usr/bin/python3 /usr/local/sbin/vqual-init
