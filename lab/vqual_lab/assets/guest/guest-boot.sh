#!/bin/sh
# Boot of a vqual lab guest (busybox init's sysinit entry). The image is a generalised
# template: an empty /etc/machine-id and no SSH host keys. The first boot generates both, so
# every clone has its own identity; the hostname and the root's SSH key come from the kernel
# command line (vqual.hostname=, vqual.authkey=<base64 of an authorized_keys line>).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
say() { echo "vqual-guest: $*" > /dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/sshd /run/lock
chmod 0755 /run/sshd
mount -o remount,rw /

arg() {
  for a in $(cat /proc/cmdline); do
    case "$a" in "$1"=*) echo "${a#*=}"; return 0 ;; esac
  done
  return 1
}

name=$(arg vqual.hostname) && echo "$name" > /etc/hostname
hostname -F /etc/hostname
name=$(cat /etc/hostname)
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
  "$name" > /etc/hosts

if [ ! -s /etc/machine-id ]; then
  tr -d '-' < /proc/sys/kernel/random/uuid > /etc/machine-id
  say "first boot: machine id generated"
fi
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
  # Ed25519 only: an RSA key takes tens of seconds under TCG.
  ssh-keygen -q -t ed25519 -N "" -C "root@$name" -f /etc/ssh/ssh_host_ed25519_key
  say "first boot: SSH host keys generated"
fi
if key=$(arg vqual.authkey); then
  mkdir -p /root/.ssh
  chmod 0700 /root/.ssh
  echo "$key" | base64 -d > /root/.ssh/authorized_keys
  chmod 0600 /root/.ssh/authorized_keys
fi

# QEMU user-mode networking: fixed addresses, no DHCP client needed.
ip link set lo up
if ip link show eth0 > /dev/null 2>&1; then
  ip link set eth0 up
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
fi

# No udev here: find the guest agent's virtio port by its name.
port=
for d in /sys/class/virtio-ports/*; do
  [ "$(cat "$d/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port="/dev/${d##*/}"
done
if [ -n "$port" ]; then
  qemu-ga --daemonize --method=virtio-serial --path="$port" --pidfile=/run/qemu-ga.pid \
    --logfile=/var/log/qemu-ga.log
else
  say "no guest agent channel"
fi
# No syslog runs here: sshd logs to a file.
/usr/sbin/sshd -o PidFile=/run/sshd.pid -E /var/log/sshd.log

# Ready means: sshd listens on port 22 and the agent runs (when it has a channel).
n=0
while [ "$n" -lt 300 ]; do
  ok=1
  ss -Hltn 'sport = :22' | grep -q . || ok=0
  if [ -n "$port" ]; then
    [ -s /run/qemu-ga.pid ] && kill -0 "$(cat /run/qemu-ga.pid)" 2> /dev/null || ok=0
  fi
  [ "$ok" = 1 ] && break
  sleep 0.1
  n=$((n + 1))
done
if [ "$ok" = 1 ]; then
  say "ready host=$name machine-id=$(cat /etc/machine-id) boot-id=$(cat /proc/sys/kernel/random/boot_id) uptime=$(cut -d" " -f1 /proc/uptime)"
else
  say "not ready: sshd or qemu-ga did not start"
fi
