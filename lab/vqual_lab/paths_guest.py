"""A throwaway lab guest with redundant paths: a bond of two NICs and a multipath disk.

This machine's kernel has no bonding, device-mapper or SCSI and loads no modules, so bonds
and multipath devices are only real inside a TCG guest whose Debian kernel has them. The
paths image is the Master-VM image (``guests.build_master_image``: same kernel, initrd and
boot) with ``multipath-tools`` (and the ``udev`` it needs) in its root and the kernel's
``bonding``, ``dm-multipath``, ``virtio_scsi`` and ``sd_mod`` modules (with their
dependencies and a ``depmod`` index) under ``/lib/modules``. Its domain has, besides the
root disk and the SSH forward NIC (``eth0``):

- two virtio NICs (``eth1``, ``eth2``; QEMU user-mode, nothing reachable) at fixed PCI
  slots, which :data:`SETUP_SCRIPT` enslaves to ``bond0`` (active-backup, miimon 100);
- one raw file (``lun.img``) attached twice, each time on its own virtio-scsi controller,
  with one serial and one WWN: two SCSI paths (``sda``, ``sdb``) to one disk, which
  multipathd assembles into ``mpatha``.

Degrading is real too: :func:`set_link` sets a NIC's link down through libvirt (the guest
sees carrier loss) and ``echo offline > /sys/block/sdX/device/state`` in the guest fails a
path. The guest is started through the VM budget (``guests.start_guest``) like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from qualification.errors import PlatformError
from vqual_lab import guests
from vqual_lab.component import LabContext, file_lock

# libteam-utils: teamd and teamdctl, for the team variant (``start(..., team=True)``).
PATHS_PACKAGES = (*guests.GUEST_PACKAGES, "multipath-tools", "libteam-utils")
# Loaded in the running guest with modprobe (dependencies from the image's modules.dep).
PATHS_MODULES = (
    "bonding",
    "team",
    "team_mode_activebackup",
    "dm_mod",
    "dm_multipath",
    "dm_round_robin",
    "dm_service_time",
    "dm_queue_length",
    "virtio_scsi",
    "sd_mod",
)
PATHS_FORMAT = 1  # bump when the build steps change in a way the digest inputs would not show
LUN_MIB = 32
LUN_SERIAL = "VQUALLUN0001"
LUN_WWN = "0x5000c500a1b2c3d4"
BOND_NICS = ("eth1", "eth2")
BOND_MACS = ("52:54:00:76:00:01", "52:54:00:76:00:02")

MULTIPATH_CONF = """\
# vqual lab paths guest: every SCSI path with a WWID is multipathed; the root (virtio-blk)
# is not. A short polling interval so a failed path shows within seconds.
defaults {
    user_friendly_names yes
    find_multipaths no
    polling_interval 2
    path_checker tur
}
blacklist {
    devnode "^vd[a-z]"
}
"""

# Run once over SSH after the ready line. Real kernel objects only: the bond through
# iproute2, the paths through udev (for their WWIDs) and multipathd.
_PRELUDE = """\
set -e
# bonding would make a bond0 of its own (max_bonds defaults to 1): ip link makes it here.
modprobe bonding max_bonds=0
for m in {modules}; do modprobe "$m"; done
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle --timeout=120
"""
_BOND = """\
ip link add bond0 type bond mode active-backup miimon 100
for nic in {nics}; do ip link set "$nic" down; ip link set "$nic" master bond0; done
ip link set bond0 up
ip addr add 192.0.2.10/24 dev bond0
"""
# The team variant: teamd (libteam) makes team0 of the same two NICs, active-backup runner,
# ethtool link watch (the carrier, as the bond's MII monitor).
TEAM_CONFIG = (
    '{{"device": "team0", "runner": {{"name": "activebackup"}}, '
    '"link_watch": {{"name": "ethtool"}}, "ports": {{"eth1": {{}}, "eth2": {{}}}}}}'
)
_TEAM = (
    'for nic in {nics}; do ip link set "$nic" down; done\n'
    "mkdir -p /run/teamd\n"
    f"teamd -d -c '{TEAM_CONFIG}'\n"
    "ip link set team0 up\n"
    "ip addr add 192.0.2.10/24 dev team0\n"
)
_MULTIPATH = """\
multipathd
n=0
until [ "$(multipathd show paths raw format '%m %t' 2>/dev/null | grep -c '^mpatha active')" = 2 ]; do
  n=$((n + 1)); [ "$n" -lt 120 ] || {{ multipathd show paths; exit 3; }}
  multipath > /dev/null 2>&1 || true
  sleep 1
done
"""
_BOND_UP = """\
n=0
until grep -q '^MII Status: up' /proc/net/bonding/bond0; do
  n=$((n + 1)); [ "$n" -lt 60 ] || exit 4
  sleep 1
done
echo vqual-paths: ready
"""
_TEAM_UP = """\
n=0
until teamdctl team0 state dump | python3 -c 'import json, sys
ports = json.load(sys.stdin).get("ports") or {{}}
sys.exit(not (len(ports) == 2 and all(p["link"]["up"] for p in ports.values())))'; do
  n=$((n + 1)); [ "$n" -lt 60 ] || exit 4
  sleep 1
done
echo vqual-paths: ready
"""
SETUP_SCRIPT = _PRELUDE + _BOND + _MULTIPATH + _BOND_UP
TEAM_SETUP_SCRIPT = _PRELUDE + _TEAM + _MULTIPATH + _TEAM_UP


@dataclass(frozen=True)
class PathsImage:
    """The cached paths image (root disk) with the master's kernel and initrd."""

    digest: str
    directory: Path
    image: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    built: bool
    seconds: float


def _install_modules(root: Path, modules_dir: Path, version: str) -> list[str]:
    """Copy :data:`PATHS_MODULES` and their dependencies into ``root`` and index them."""
    files = guests.initrd_modules(modules_dir, PATHS_MODULES)
    dest_dir = root / "usr/lib/modules" / version
    for path in files:
        dest = dest_dir / path.relative_to(modules_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    for name in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (modules_dir / name).is_file():
            shutil.copyfile(modules_dir / name, dest_dir / name)
    guests._run(["depmod", "-b", str(root), version])
    return sorted(str(p.relative_to(modules_dir)) for p in files)


def _mkfs(root: Path, image: Path, digest: str) -> None:
    guests._run(
        [
            "mkfs.ext4", "-q", "-F", "-L", "vqual-root", "-U", str(uuid.UUID(digest[:32])),
            "-E", "root_owner=0:0", "-d", str(root), str(image), f"{guests.IMAGE_SIZE_MIB}M",
        ]
    )


def build_paths_image(lab_dir: Path, log: Callable[[str], None] = lambda _m: None) -> PathsImage:
    """Build (or take from the cache) the paths image: ``<lab dir>/cache/guest/paths-<digest>``.

    Raises:
        PlatformError: mmdebstrap/debootstrap, depmod or mkfs.ext4 failed.
    """
    started = time.monotonic()
    master = guests.build_master_image(lab_dir, log)
    cache = lab_dir / "cache" / "guest"
    with file_lock(cache / ".lock"):
        suite = guests.os_codename()
        mirror = guests.debian_mirror(suite)
        kernel = guests._find_kernel(cache, log)
        files = guests.initrd_modules(kernel.modules, PATHS_MODULES)
        inputs = {
            "format": PATHS_FORMAT,
            "master": master.digest,
            "packages": PATHS_PACKAGES,
            "modules": {p.name: guests._sha256_file(p) for p in files},
            "multipath_conf": MULTIPATH_CONF,
        }
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        out = cache / f"paths-{digest[:16]}"
        image = PathsImage(
            digest, out, out / "paths.img", master.kernel, master.initrd,
            master.kernel_version, False, 0.0,
        )
        if (out / "build.json").is_file():
            return _with(image, built=False, seconds=time.monotonic() - started)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        base = guests._debootstrap(cache, mirror, suite, log, packages=PATHS_PACKAGES)
        root = tmp / "rootfs"
        log("paths guest: generalising the root, adding the kernel modules")
        guests._run(["cp", "-a", "--reflink=auto", str(base), str(root)])
        (root / ".vqual-complete").unlink(missing_ok=True)
        guests._generalise(root)
        installed = _install_modules(root, kernel.modules, kernel.version)
        (root / "etc/multipath.conf").write_text(MULTIPATH_CONF)
        _mkfs(root, tmp / "paths.img", digest)
        shutil.rmtree(root)
        seconds = time.monotonic() - started
        record = {"digest": digest, "inputs": inputs, "modules": installed, "seconds": seconds}
        (tmp / "build.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        for old in cache.glob("paths-*"):
            if old != out and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        log(f"paths guest: image {digest[:16]} built in {seconds:.0f} s")
        return _with(image, built=True, seconds=seconds)


def _with(image: PathsImage, *, built: bool, seconds: float) -> PathsImage:
    return PathsImage(
        image.digest, image.directory, image.image, image.kernel, image.initrd,
        image.kernel_version, built, seconds,
    )


@dataclass(frozen=True)
class PathsGuest:
    """A defined paths guest: where its files are and how to reach it."""

    name: str
    host: str
    ssh_address: str
    ssh_port: int
    outer: Path  # its directory on the shared storage, seen from here
    inner: str  # the same, seen from inside the KVM hosts

    @property
    def serial_log(self) -> Path:
        return self.outer / f"{self.name}.serial.log"


DOMAIN_XML = """\
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <title>vqual lab paths guest {name} (bond and multipath)</title>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{inner}/vmlinuz</kernel>
    <initrd>{inner}/initrd.img</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{inner}/{name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <controller type='scsi' index='1' model='virtio-scsi'/>
{lun_disks}
{bond_nics}
    <controller type='usb' model='none'/>
    <serial type='pty'>
      <log file='{inner}/{name}.serial.log' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=vqualnet0,restrict=on,hostfwd=tcp:{ssh_address}:{ssh_port}-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=vqualnet0,addr=0x10'/>
  </qemu:commandline>
</domain>
"""

# The same raw file on two controllers: two paths, one serial and WWN (multipath's WWID).
LUN_DISK = """\
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{inner}/lun.img'/>
      <target dev='sd{letter}' bus='scsi'/>
      <shareable/>
      <serial>{serial}</serial>
      <wwn>{wwn}</wwn>
      <address type='drive' controller='{controller}' bus='0' target='0' unit='0'/>
    </disk>"""

# After the SSH NIC's slot 0x10, so the kernel names them eth1 and eth2 (net.ifnames=0).
BOND_NIC = """\
    <interface type='user'>
      <mac address='{mac}'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='{slot}' function='0x0'/>
    </interface>"""


def domain_xml(guest: PathsGuest, pubkey: str) -> str:
    """The libvirt domain XML of the paths guest."""
    quote = {"'": "&apos;", '"': "&quot;"}
    inner = escape(guest.inner, quote)
    lun_disks = "\n".join(
        LUN_DISK.format(inner=inner, letter=letter, serial=LUN_SERIAL, wwn=LUN_WWN,
                        controller=controller)
        for controller, letter in ((0, "a"), (1, "b"))
    )
    bond_nics = "\n".join(
        BOND_NIC.format(mac=mac, slot=f"0x{0x11 + i:02x}") for i, mac in enumerate(BOND_MACS)
    )
    values = {
        "name": guest.name,
        "uuid": str(uuid.uuid5(guests._UUID_NS, f"{guest.name}:{guest.inner}")),
        "memory_mib": str(guests.GUEST_MEMORY_MIB),
        "cmdline": guests.kernel_cmdline(guest.name, pubkey),
        "ssh_address": guest.ssh_address,
        "ssh_port": str(guest.ssh_port),
    }
    safe = {k: escape(v, quote) for k, v in values.items()}
    return DOMAIN_XML.format(inner=inner, lun_disks=lun_disks, bond_nics=bond_nics, **safe)


def define(
    ctx: LabContext, image: PathsImage, name: str, host: str, ssh_address: str, ssh_port: int
) -> PathsGuest:
    """Publish the image's files for ``name`` on the shared storage and define its domain.

    Raises:
        VmBudgetError: ``name`` is not a throwaway name (``vqual-tmp-*``).
        PlatformError: libvirt failed.
    """
    import libvirt

    if not guests.VM_BUDGET.is_throwaway(name):
        raise guests.VmBudgetError(f"paths guest {name!r} must be named vqual-tmp-*")
    kvm = guests._kvm()
    sub = f"{guests.GUESTS_SUBDIR}/paths-{image.digest[:16]}"
    guest = PathsGuest(
        name, host, ssh_address, ssh_port, ctx.lab_dir / "shared" / sub,
        f"{kvm.SHARED_MOUNT}/{sub}",
    )
    guest.outer.mkdir(parents=True, exist_ok=True)
    for src, dest in ((image.kernel, "vmlinuz"), (image.initrd, "initrd.img")):
        if not (guest.outer / dest).is_file():
            shutil.copyfile(src, guest.outer / dest)
    base = guest.outer / "paths.img"
    if not base.is_file():
        guests._run(["cp", "--sparse=always", str(image.image), str(base) + ".tmp"])
        os.replace(str(base) + ".tmp", base)
    guests.make_overlay(Path("paths.img"), guest.outer / f"{name}.qcow2")
    lun = guest.outer / "lun.img"
    lun.unlink(missing_ok=True)
    with open(lun, "wb") as fh:
        fh.truncate(LUN_MIB << 20)
    guest.serial_log.unlink(missing_ok=True)
    pubkey = kvm.Paths.of(ctx).ssh_key.with_suffix(".pub").read_text().strip()
    conn = guests._open(guests.lab_hosts()[host])
    try:
        conn.defineXML(domain_xml(guest, pubkey))
    except libvirt.libvirtError as exc:
        raise PlatformError(f"define {name}: {exc.get_error_message()}") from exc
    finally:
        conn.close()
    return guest


def remove(ctx: LabContext, guest: PathsGuest) -> None:
    """Destroy and undefine the guest and delete its overlay, LUN and serial log."""
    guests.remove_guest(ctx, guest.name, guest.host)
    for name in (f"{guest.name}.qcow2", "lun.img", f"{guest.name}.serial.log"):
        (guest.outer / name).unlink(missing_ok=True)


def start(
    ctx: LabContext, guest: PathsGuest, *, timeout: float = 300.0, team: bool = False
) -> dict[str, str]:
    """Start the guest through the VM budget, wait for its ready line, then set up the bond
    (with ``team``: a teamd team0 instead) and the multipath device over SSH; returns the
    ready line's fields."""
    guests.start_guest(ctx.lab_dir, guest.name, guest.host)
    uri = guests.lab_hosts()[guest.host]
    ready = guests.wait_ready(
        guest.serial_log, timeout=timeout, alive=guests._is_running(guest.name, guest.host, uri)
    )
    script = (TEAM_SETUP_SCRIPT if team else SETUP_SCRIPT).format(
        modules=" ".join(PATHS_MODULES), nics=" ".join(BOND_NICS)
    )
    out = ssh(ctx, guest, script, timeout=240)
    if "vqual-paths: ready" not in out:
        raise PlatformError(f"paths guest {guest.name}: set-up did not finish: {out[-300:]}")
    return ready


def ssh(ctx: LabContext, guest: PathsGuest, command: str, timeout: float = 60) -> str:
    """Run ``command`` in the guest over its SSH forward (the lab's key); its output."""
    return guests.ssh_run(ctx.lab_dir, guest.ssh_address, guest.ssh_port, command, timeout)


def set_link(guest: PathsGuest, nic: int, up: bool) -> None:
    """Set bond NIC ``nic`` (0 or 1)'s link up or down through libvirt (carrier in the guest)."""
    import libvirt

    conn = guests._open(guests.lab_hosts()[guest.host])
    try:
        dom = conn.lookupByName(guest.name)
        xml = (
            f"<interface type='user'><mac address='{BOND_MACS[nic]}'/>"
            f"<model type='virtio'/><link state='{'up' if up else 'down'}'/></interface>"
        )
        dom.updateDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"set link of {guest.name}: {exc.get_error_message()}") from exc
    finally:
        conn.close()


def detach_path(guest: PathsGuest, controller: int) -> None:
    """Hot-unplug the LUN's path on virtio-scsi ``controller`` (0: sda, 1: sdb) through
    libvirt, as a cable pulled: the guest kernel removes the SCSI device."""
    import libvirt

    letter = "ab"[controller]
    xml = LUN_DISK.format(inner=escape(guest.inner, {"'": "&apos;", '"': "&quot;"}),
                          letter=letter, serial=LUN_SERIAL, wwn=LUN_WWN, controller=controller)
    conn = guests._open(guests.lab_hosts()[guest.host])
    try:
        conn.lookupByName(guest.name).detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"detach sd{letter} of {guest.name}: {exc.get_error_message()}") from exc
    finally:
        conn.close()


def inventory_host(ctx: LabContext, guest: PathsGuest) -> dict[str, Any]:
    """The guest as an inventory host entry (SSH as root with the lab's key)."""
    key = guests._kvm().Paths.of(ctx).ssh_key
    return {
        "ansible_host": guest.ssh_address,
        "ansible_port": guest.ssh_port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_python_interpreter": "/usr/bin/python3",
        "vqual_target_kinds": ["linux_host"],
    }


#: The guest's SSH forward in the default lab (throwaway range 127.0.0.63-69, docs/lab-guests.md);
#: a second lab on other host addresses (``VQUAL_LAB_KVM_HOSTS``) shifts it by as much as its
#: kvm1 address is shifted from 127.0.0.11, so two labs never share the forward.
DEFAULT_FORWARD = ("127.0.0.66", 2266)


def forward() -> tuple[str, int]:
    """This lab's SSH forward address and port for the paths guest."""
    kvm1 = next(h for h in guests._kvm().hosts_from_env() if h.name == "kvm1")
    shift = int(kvm1.address.rsplit(".", 1)[1]) - 11
    address, port = DEFAULT_FORWARD
    octet = int(address.rsplit(".", 1)[1]) + shift
    if not 0 < octet < 255:
        raise PlatformError(f"no forward address for a lab whose kvm1 is {kvm1.address}")
    return f"127.0.0.{octet}", port + shift
