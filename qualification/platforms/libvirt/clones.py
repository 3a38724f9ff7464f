"""libvirt clones of a Master-VM: a qcow2 overlay of each master disk under a new name, UUID
and MAC (:func:`create_libvirt_clone`), and their removal (:func:`remove_libvirt_clone`).

The overlay is made through libvirt (the disk's storage pool, else a transient ``dir`` pool on
its directory), so it works on a remote hypervisor; where libvirt cannot, with ``qemu-img`` on
this machine. ``playbooks/clone_qualify.yml`` runs these through the libvirt plug-in's
``create_clone`` hook (``python -m qualification.baseline.clones create-libvirt ...``).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from qualification.errors import BadInputError, NotSupported, PlatformError
from qualification.platforms.base import SAFE_VM_NAME as CLONE_NAME


@dataclass(frozen=True)
class CreatedClone:
    """A clone made by :func:`create_libvirt_clone`: its domain and its overlay disks."""

    name: str
    uuid: str
    macs: tuple[str, ...]
    disks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "macs": list(self.macs),
            "disks": list(self.disks),
        }


def overlay_xml(master_xml: str, name: str, overlays: Mapping[str, str]) -> str:
    """The clone's domain XML from the master's: new name, no UUID and no MAC addresses
    (libvirt assigns new ones), each disk in ``overlays`` (target dev -> overlay path)
    pointing at its qcow2 overlay. Everything else stays the master's: that is the point."""
    root = ET.fromstring(master_xml)
    name_el = root.find("name")
    if name_el is None:
        raise BadInputError("the master's domain XML has no <name>")
    name_el.text = name
    for element in root.findall("uuid"):
        root.remove(element)
    for iface in root.findall("devices/interface"):
        for mac in iface.findall("mac"):
            iface.remove(mac)
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        dev = target.get("dev") if target is not None else None
        if dev is None or dev not in overlays:
            continue
        source = disk.find("source")
        driver = disk.find("driver")
        if source is None:
            continue
        source.set("file", overlays[dev])
        if driver is not None:
            driver.set("type", "qcow2")
        for backing in disk.findall("backingStore"):
            disk.remove(backing)
    return ET.tostring(root, encoding="unicode")


def _file_disks(xml: str) -> list[tuple[str, str, str]]:
    """(target dev, source file, format) of each file-backed disk of a domain XML."""
    root = ET.fromstring(xml)
    out = []
    for disk in root.findall("devices/disk"):
        if disk.get("device", "disk") != "disk" or disk.get("type", "file") != "file":
            continue
        source, target, driver = disk.find("source"), disk.find("target"), disk.find("driver")
        if source is None or target is None or not source.get("file") or not target.get("dev"):
            continue
        fmt = (driver.get("type") if driver is not None else None) or "raw"
        out.append((str(target.get("dev")), str(source.get("file")), fmt))
    return out


@contextlib.contextmanager
def _volume_at(conn: Any, path: str) -> Iterator[Any | None]:
    """The libvirt storage volume at ``path``, or None.

    From the pool that holds it; else through a transient ``dir`` pool on its directory, so
    a disk file on a remote hypervisor can still be handled through libvirt. The transient
    pool is destroyed afterwards (a transient pool leaves no definition; the files stay).
    """
    import libvirt

    try:
        found = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        found = None
    if found is not None:
        yield found
        return
    directory = str(Path(path).parent)
    name = "vqual-tmp-pool-" + hashlib.sha256(directory.encode()).hexdigest()[:12]
    try:
        pool = conn.storagePoolCreateXML(
            f"<pool type='dir'><name>{name}</name><target><path>{escape(directory)}</path>"
            "</target></pool>",
            0,
        )
    except libvirt.libvirtError:
        pool = None
    if pool is None:
        yield None
        return
    try:
        try:
            vol = pool.storageVolLookupByName(Path(path).name)
        except libvirt.libvirtError:
            vol = None
        yield vol
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            pool.destroy()


def _delete_file(conn: Any, path: str) -> None:
    """Delete a clone's overlay through libvirt, else on this machine."""
    import libvirt

    with _volume_at(conn, path) as vol:
        if vol is not None:
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete(0)
                return
    Path(path).unlink(missing_ok=True)


def _quiet_errors(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr by default; each is raised as an exception."""


def create_libvirt_clone(uri: str, master: str, name: str) -> CreatedClone:
    """Define ``name`` as a clone of the stopped domain ``master``: each file disk becomes a
    qcow2 overlay ``<name>-<dev>.qcow2`` beside the master's disk, with a new UUID and MAC
    addresses. The clone is defined, not started.

    The overlay is made through libvirt (the disk's storage pool, else a transient ``dir``
    pool on its directory), so it works on a remote hypervisor; where libvirt cannot, with
    ``qemu-img`` when the disk is a file on this machine (relative backing path).

    Raises:
        BadInputError: an unsafe name.
        PlatformError: the master runs (its clones would read blocks it changes), a domain
            ``name`` exists, or libvirt refuses a step.
        NotSupported: a master disk that libvirt cannot reach and that is not a local file.
    """
    import libvirt

    if not CLONE_NAME.match(name):
        raise BadInputError(f"clone name {name!r} is not a safe VM name ({CLONE_NAME.pattern})")
    libvirt.registerErrorHandler(_quiet_errors, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"cannot connect: {exc.get_error_message()}", where=uri) from None
    created: list[str] = []  # overlays made so far: removed again if the clone fails
    try:
        dom = _stopped_master(conn, uri, master, name)
        master_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        overlays: dict[str, str] = {}
        for dev, path, fmt in _file_disks(master_xml):
            overlays[dev] = _overlay(conn, uri, master, name, dev, path, fmt, created)
        new_dom = conn.defineXML(overlay_xml(master_xml, name, overlays))
        root = ET.fromstring(new_dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        macs = tuple(
            str(mac.get("address")) for mac in root.findall("devices/interface/mac") if mac.get("address")
        )
        created.clear()  # defined: the overlays now belong to the clone
        return CreatedClone(name=name, uuid=new_dom.UUIDString(), macs=macs, disks=tuple(overlays.values()))
    except libvirt.libvirtError as exc:
        raise PlatformError(f"clone {master} to {name} failed: {exc.get_error_message()}", where=uri) from None
    finally:
        for path in created:  # a failed clone leaves no overlay behind
            with contextlib.suppress(libvirt.libvirtError, OSError):
                _delete_file(conn, path)
        conn.close()


def _stopped_master(conn: Any, uri: str, master: str, name: str) -> Any:
    """The master's domain; refused when it is missing or running, or ``name`` is taken."""
    import libvirt

    try:
        dom = conn.lookupByName(master)
    except libvirt.libvirtError:
        raise PlatformError(f"clone {master} to {name} refused: no domain {master}", where=uri) from None
    if dom.isActive():
        raise PlatformError(
            f"clone {master} to {name} refused: the master is running, and overlays must "
            "not read a disk that changes under them",
            where=uri,
        )
    try:
        conn.lookupByName(name)
    except libvirt.libvirtError:
        pass
    else:
        raise PlatformError(f"clone {master} to {name} refused: {name} exists", where=uri)
    return dom


def _overlay(
    conn: Any,
    uri: str,
    master: str,
    name: str,
    dev: str,
    path: str,
    fmt: str,
    created: list[str],
) -> str:
    """A qcow2 overlay on one master disk; its path, also appended to ``created``.

    Through libvirt storage where it reaches the disk, else with ``qemu-img`` on a file of
    this machine.
    """
    overlay = str(Path(path).with_name(f"{name}-{dev}.qcow2"))
    with _volume_at(conn, path) as vol:
        if vol is not None:
            capacity = vol.info()[1]
            new = vol.storagePoolLookupByVolume().createXML(
                f"<volume><name>{name}-{dev}.qcow2</name><capacity>{capacity}</capacity>"
                "<target><format type='qcow2'/></target>"
                f"<backingStore><path>{escape(path)}</path><format type='{fmt}'/>"
                "</backingStore></volume>",
                0,
            )
            overlay = new.path()
            created.append(overlay)
    if vol is None:
        if not (Path(path).is_file() and shutil.which("qemu-img")):
            raise NotSupported(
                f"clone {master}",
                f"disk {path} is neither reachable through libvirt storage nor a file "
                "on this machine",
                where=uri,
            )
        # relative backing path, as the lab's clones: the pair can move together
        done = subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt,
             "-b", Path(path).name, overlay],
            capture_output=True, text=True, check=False, timeout=120,
        )
        if done.returncode != 0:
            raise PlatformError(
                f"clone {master} to {name}: qemu-img failed: {done.stderr.strip()}",
                where=uri,
            )
        created.append(overlay)
    return overlay


def remove_libvirt_clone(uri: str, name: str) -> None:
    """Undefine a clone made by :func:`create_libvirt_clone` and delete its overlays
    (destroying it first if it runs). Only ``<name>-<dev>.qcow2`` overlays are deleted,
    never a backing file.

    Raises:
        PlatformError: libvirt refuses a step.
    """
    import libvirt

    libvirt.registerErrorHandler(_quiet_errors, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"cannot connect: {exc.get_error_message()}", where=uri) from None
    try:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            return
        disks = _file_disks(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        for dev, path, _fmt in disks:
            if Path(path).name == f"{name}-{dev}.qcow2":
                _delete_file(conn, path)
    except libvirt.libvirtError as exc:
        raise PlatformError(f"remove clone {name} failed: {exc.get_error_message()}", where=uri) from None
    finally:
        conn.close()
