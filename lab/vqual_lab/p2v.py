"""P2V of a lab KVM host: its root filesystem made into a bootable VM image (docs/conversion.md,
"Shown on the lab: a P2V").

A lab KVM host is a "physical" machine with a root filesystem of its own (an overlay on the
cached base, run in its own namespaces under its own init, ``vqual-init``; lab/vqual_lab/kvm.py).
Its P2V, as virt-p2v does it, copies that filesystem while the host runs, then adapts what
the new platform needs:

1. **Copy**: the host's root as its init sees it (``/proc/<init pid>/root``), without the
   kernel's and the lab's mounts (``/proc``, ``/sys``, ``/dev``, ``/run``, the shared storage
   and the package repository), as a tar stream.
2. **Adapt** (the boot adapter, appended to the stream, so it replaces nothing of the host's
   but ``/etc/inittab``, which the host has not): the lab's initrd hands over to
   ``/bin/busybox init`` (the host has busybox); its ``/etc/inittab`` runs
   ``vqual-p2v-boot`` (the mounts, the hostname and the VM's network, which ``host-ns.sh``
   gave the chroot host), then the host's own init ``vqual-init`` (which starts the host's
   services from its own ``/etc/vqual-lab/services.json``), a relay from the VM's NIC to the
   host's listen address, and a ready line on the serial console. The host's daemons listen
   on its loopback address (127.0.0.11), which only a host sharing this machine's network
   stack reaches; in the VM, the relay forwards the SSH port forward's connections there,
   so the host's own sshd answers with its own configuration and keys.
3. **Image**: ``virt-make-fs`` (libguestfs) writes the stream into a raw ext4 image, through
   its appliance (a TCG guest: ``LIBGUESTFS_BACKEND_SETTINGS=force_tcg``, as /dev/kvm does
   not work here; it counts in the lab's VM budget while it runs).
4. **Boot**: a domain with the lab's direct-kernel-boot kernel and initrd, as the guests use,
   the image as its virtio disk, on the other KVM host.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from qualification.errors import PlatformError

#: Paths of the running host that are the kernel's or the lab's, not the host's own files.
EXCLUDED = ("proc", "sys", "dev", "run", "tmp", "srv/vqual-shared", "srv/vqual-repo")
#: The VM's NIC address on QEMU's user-mode network (its port forward's destination).
VM_ADDRESS = "10.0.2.15"
READY_MARK = "vqual-guest: ready "
#: virt-make-fs measured here: 20.7 s for an almost empty tree (the appliance's boot), 67.7 s
#: and 110.8 s for a lab host's root (430 MiB; load 5-10); the bound is 5x the slowest, within
#: a test's ten minutes.
MAKE_FS_TIMEOUT_S = 550.0

_BOOT = """#!/bin/sh
# P2V boot adapter (vqual lab): what host-ns.sh gave the chroot host, on the VM's hardware.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/lock /tmp
chmod 1777 /tmp
mount -o remount,rw /
hostname -F /etc/hostname
ip link set lo up
ip link set eth0 up
ip addr add {vm}/24 dev eth0
ip route add default via 10.0.2.2
echo "vqual-p2v: booted $(hostname), kernel $(uname -r)" > /dev/console
"""

_READY = """#!/bin/sh
# P2V boot adapter: a ready line once the host's own sshd listens on its address.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
n=0
while [ "$n" -lt 1200 ]; do
  ss -Hltn 'sport = :22' | grep -q '{listen}:22' && break
  sleep 0.25
  n=$((n + 1))
done
if ss -Hltn 'sport = :22' | grep -q '{listen}:22'; then
  echo "{mark}host=$(hostname) machine-id=$(cat /etc/machine-id) init=$(cat /proc/$(pgrep -o vqual-init)/comm 2>/dev/null)" > /dev/console
else
  echo "vqual-guest: not ready: the host's sshd does not listen on {listen}:22" > /dev/console
fi
"""

_RELAY = '''#!/usr/bin/python3
"""P2V boot adapter: relay TCP from the VM's NIC to the host's own listen address."""
import socket
import sys
import threading


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    src, dst = sys.argv[1], sys.argv[2]
    host, port = src.rsplit(":", 1)
    server = socket.create_server((host, int(port)), reuse_port=False)
    while True:
        conn, _ = server.accept()
        try:
            out = socket.create_connection((dst.rsplit(":", 1)[0], int(dst.rsplit(":", 1)[1])))
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, out), (out, conn)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


main()
'''


@dataclass
class P2vImage:
    """What :func:`make_image` made: the image and how long each step took."""

    image: Path
    listen: str
    copy_seconds: float
    make_fs_seconds: float
    tar_bytes: int


def listen_address(root: Path) -> str:
    """The host's sshd listen address, from its own configuration.

    Raises:
        PlatformError: none is configured.
    """
    for conf in sorted((root / "etc/ssh/sshd_config.d").glob("*.conf")):
        found = re.search(r"^ListenAddress\s+(\S+)", conf.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    raise PlatformError("the host's sshd names no ListenAddress", where=str(root))


def _adapter(listen: str) -> dict[str, tuple[str, int]]:
    inittab = (
        "# P2V boot adapter (vqual lab): the lab's initrd starts busybox init.\n"
        "::sysinit:/usr/local/sbin/vqual-p2v-boot\n"
        "::respawn:/usr/bin/python3 /usr/local/sbin/vqual-init\n"
        f"::respawn:/usr/bin/python3 /usr/local/sbin/vqual-p2v-relay {VM_ADDRESS}:22 {listen}:22\n"
        "::once:/usr/local/sbin/vqual-p2v-ready\n"
        "::shutdown:/bin/busybox sync\n"
    )
    return {
        "etc/inittab": (inittab, 0o644),
        "usr/local/sbin/vqual-p2v-boot": (_BOOT.format(vm=VM_ADDRESS), 0o755),
        "usr/local/sbin/vqual-p2v-ready": (_READY.format(listen=listen, mark=READY_MARK), 0o755),
        "usr/local/sbin/vqual-p2v-relay": (_RELAY, 0o755),
    }


def _append_adapter(tar_path: Path, listen: str) -> None:
    with tarfile.open(tar_path, "a") as tar:
        for name, (text, mode) in _adapter(listen).items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))


def make_image(host_root: Path, image: Path, *, extra_mib: int = 256) -> P2vImage:
    """Copy the running host's root (``host_root``: ``/proc/<its init pid>/root``), add the
    boot adapter and write a raw ext4 image with ``virt-make-fs``.

    Raises:
        PlatformError: tar or virt-make-fs failed (with the end of its output).
    """
    listen = listen_address(host_root)
    with tempfile.TemporaryDirectory(prefix="vqual-p2v-", dir=image.parent) as scratch:
        stream = Path(scratch) / "root.tar"
        started = time.monotonic()
        excludes = [f"--exclude=./{p}/*" for p in EXCLUDED]
        done = subprocess.run(
            ["tar", "-C", str(host_root), "--numeric-owner", "--one-file-system", "-cf",
             str(stream), *excludes, "."], capture_output=True, text=True, check=False)
        # 1: a file changed while it was read (a log of the running host): kept, as virt-p2v
        # would copy it.
        if done.returncode not in (0, 1):
            raise PlatformError(f"tar of the host's root failed: {done.stderr[-400:]}")
        _append_adapter(stream, listen)
        copied = time.monotonic() - started
        started = time.monotonic()
        env = {**os.environ, "LIBGUESTFS_BACKEND": "direct",
               "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}
        done = subprocess.run(
            ["virt-make-fs", "--format=raw", "--type=ext4", f"--size=+{extra_mib}M",
             str(stream), str(image)], capture_output=True, text=True, env=env, check=False,
            timeout=MAKE_FS_TIMEOUT_S)
        if done.returncode != 0:
            raise PlatformError(f"virt-make-fs failed: {(done.stdout + done.stderr)[-600:]}")
        return P2vImage(image, listen, copied, time.monotonic() - started, stream.stat().st_size)


def domain_xml(base_xml: str, name: str, disk: str, memory_mib: int = 512) -> str:
    """A lab guest's definition (guests.domain_xml) turned into the P2V VM's: its disk the
    raw image, more memory (libvirtd and QEMU of the host run in it)."""
    import xml.etree.ElementTree as ET

    qemu_ns = "http://libvirt.org/schemas/domain/qemu/1.0"
    ET.register_namespace("qemu", qemu_ns)
    root = ET.fromstring(base_xml)
    title = root.find("title")
    if title is not None:
        title.text = f"vqual lab P2V of a KVM host ({name})"
    memory = root.find("memory")
    assert memory is not None
    memory.text = str(memory_mib)
    disk_el = root.find("devices/disk")
    assert disk_el is not None
    driver, source = disk_el.find("driver"), disk_el.find("source")
    assert driver is not None and source is not None
    driver.set("type", "raw")
    source.set("file", disk)
    return ET.tostring(root, encoding="unicode")
