"""libvirt's XML as facts: capabilities and domain definitions read into plain values, with
no connection (the adapter, ``adapter.py``, fetches the XML; tests parse fixed documents).

vqual's own domain metadata lives in the namespace :data:`VQUAL_NS`.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from html import escape
from typing import Any

from qualification.platforms.base import (
    CRASHED,
    PAUSED,
    RUNNING,
    STOPPED,
    STOPPING,
    SUSPENDED,
    DiskFacts,
    NicFacts,
    Placement,
    VmConfig,
    VmFacts,
    VmSummary,
)

VQUAL_NS = "urn:x-vqual:libvirt:1"
#: The namespace virt-install and virt-manager write the guest OS's libosinfo id in.
OSINFO_NS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"

#: A snapshot's ``<state>`` as a power state.
SNAPSHOT_STATES = {
    "running": RUNNING,
    "blocked": RUNNING,
    "paused": PAUSED,
    "shutdown": STOPPING,
    "shutoff": STOPPED,
    "crashed": CRASHED,
    "pmsuspended": SUSPENDED,
    "disk-snapshot": STOPPED,
}


def quoteattr(value: str) -> str:
    """An XML attribute value in double quotes (``html.escape`` escapes both quote kinds).

    Not ``xml.sax.saxutils``: importing it pulls in ``urllib.request``, which costs a module
    process a noticeable share of its start-up.
    """
    return f'"{escape(value, quote=True)}"'


def version_text(number: int) -> str:
    """libvirt's packed version (major * 1,000,000 + minor * 1,000 + release) as dotted text."""
    return f"{number // 1_000_000}.{(number // 1000) % 1000}.{number % 1000}"


def _memory_mib(element: ET.Element | None) -> int:
    if element is None or not (element.text or "").strip():
        return 0
    amount = int((element.text or "0").strip())
    unit = (element.get("unit") or "KiB").lower()
    factor = {
        "b": 1,
        "bytes": 1,
        "k": 1024,
        "kib": 1024,
        "kb": 1000,
        "m": 1024**2,
        "mib": 1024**2,
        "mb": 1000**2,
        "g": 1024**3,
        "gib": 1024**3,
        "gb": 1000**3,
        "t": 1024**4,
        "tib": 1024**4,
        "tb": 1000**4,
    }.get(unit, 1024)
    return (amount * factor) // (1024 * 1024)


def _cpu_features(cpu: ET.Element | None) -> list[str]:
    if cpu is None:
        return []
    # The test driver lists <features><pae/></features>; real hosts <feature name='...'/>.
    flags = cpu.find("features")
    names = [f.tag for f in flags] if flags is not None else []
    names += [f.get("name", "") for f in cpu.findall("feature")]
    return sorted(set(names) - {""})


def parse_capabilities(xml: str) -> dict[str, Any]:
    """The parts of ``<capabilities>`` an IQ looks at, as plain JSON.

    Returns ``{"host": {arch, cpu_model, cpu_vendor, features, uuid, numa_cells, secmodels,
    secmodel_dois}, "guests": [{os_type, arch, wordsize, emulator, domain_types, machines}],
    "guest": {os_types, arches, domain_types, machines}}``; ``guest`` is the union over
    ``guests``, sorted, for checks that ask "is hvm offered at all".
    """
    root = ET.fromstring(xml)
    host = root.find("host")
    cpu = host.find("cpu") if host is not None else None
    secmodels = host.findall("secmodel") if host is not None else []
    host_json: dict[str, Any] = {
        "arch": (cpu.findtext("arch") if cpu is not None else None),
        "cpu_model": (cpu.findtext("model") if cpu is not None else None),
        "cpu_vendor": (cpu.findtext("vendor") if cpu is not None else None),
        "features": _cpu_features(cpu),
        "uuid": host.findtext("uuid") if host is not None else None,
        "numa_cells": len(host.findall("topology/cells/cell")) if host is not None else 0,
        "secmodels": [m.findtext("model") or "" for m in secmodels],
        "secmodel_dois": [m.findtext("doi") or "" for m in secmodels],
    }
    guests: list[dict[str, Any]] = []
    for guest in root.findall("guest"):
        arch = guest.find("arch")
        guests.append(
            {
                "os_type": guest.findtext("os_type"),
                "arch": arch.get("name") if arch is not None else None,
                "wordsize": int(arch.findtext("wordsize") or 0) if arch is not None else 0,
                "emulator": arch.findtext("emulator") if arch is not None else None,
                "domain_types": sorted(
                    {
                        d.get("type", "")
                        for d in (arch.findall("domain") if arch is not None else [])
                    }
                ),
                "machines": sorted(
                    {
                        (m.text or "").strip()
                        for m in (arch.iter("machine") if arch is not None else [])
                    }
                    - {""}
                ),
            }
        )
    union = {
        "os_types": sorted({g["os_type"] for g in guests if g["os_type"]}),
        "arches": sorted({g["arch"] for g in guests if g["arch"]}),
        "domain_types": sorted({t for g in guests for t in g["domain_types"]}),
        "machines": sorted({m for g in guests for m in g["machines"]}),
    }
    return {"host": host_json, "guests": guests, "guest": union}


def _placement_from(root: ET.Element) -> Placement:
    element = root.find(f"metadata/{{{VQUAL_NS}}}placement")
    if element is None:
        return Placement()
    return Placement(tuple((element.get("allowed-hosts") or "").split()))


def _disk_from(dev: ET.Element) -> DiskFacts:
    """A ``<disk>`` device as facts; its source is a file, block device, volume or name."""
    source = dev.find("source")
    target = dev.find("target")
    driver = dev.find("driver")
    src = None
    if source is not None:
        src = source.get("file") or source.get("dev") or source.get("volume") or source.get("name")
    return DiskFacts(
        target=target.get("dev", "") if target is not None else "",
        device=dev.get("device", "disk"),
        source=src,
        bus=target.get("bus") if target is not None else None,
        driver_format=driver.get("type") if driver is not None else None,
        readonly=dev.find("readonly") is not None,
    )


def _nic_from(dev: ET.Element) -> NicFacts:
    """An ``<interface>`` device as facts; its network is a network, bridge or device."""
    mac = dev.find("mac")
    source = dev.find("source")
    model = dev.find("model")
    network = None
    if source is not None:
        network = source.get("network") or source.get("bridge") or source.get("dev")
    return NicFacts(
        mac=mac.get("address") if mac is not None else None,
        network=network,
        model=model.get("type") if model is not None else None,
        kind=dev.get("type", ""),
    )


def _devices_from(root: ET.Element) -> tuple[list[DiskFacts], list[NicFacts], set[str]]:
    """A domain's disks, NICs and the tags of its other devices."""
    disks = []
    nics = []
    devices: set[str] = set()
    for dev in list(root.find("devices") or []):
        if dev.tag == "disk":
            disks.append(_disk_from(dev))
        elif dev.tag == "interface":
            nics.append(_nic_from(dev))
        else:
            devices.add(dev.tag)
    return disks, nics + _commandline_nics(root), devices


_QEMU_NS = "{http://libvirt.org/schemas/domain/qemu/1.0}"


def _commandline_nics(root: ET.Element) -> list[NicFacts]:
    """NICs passed to QEMU directly (``<qemu:commandline>`` ``-device <model>,netdev=<id>``
    with its ``-netdev <type>,id=<id>``): part of the VM's hardware though libvirt does not
    manage them (the lab's guests get their port-forwarded NIC this way)."""
    args = [a.get("value", "") for a in root.findall(f"{_QEMU_NS}commandline/{_QEMU_NS}arg")]
    pairs = [(args[i], args[i + 1]) for i in range(len(args) - 1) if args[i] in ("-netdev", "-device")]
    netdevs: dict[str, str] = {}
    for flag, value in pairs:
        parts = value.split(",")
        opts = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if flag == "-netdev" and "id" in opts:
            netdevs[opts["id"]] = parts[0]
    nics = []
    for flag, value in pairs:
        parts = value.split(",")
        opts = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if flag == "-device" and "netdev" in opts:
            nics.append(NicFacts(mac=opts.get("mac"), network=netdevs.get(opts["netdev"]),
                                 model=parts[0], kind="qemu-commandline"))
    return nics


def _vcpus(root: ET.Element) -> int:
    vcpu = root.find("vcpu")
    return int((vcpu.get("current") or vcpu.text or "0").strip()) if vcpu is not None else 0


def vm_summary_from_xml(xml: str, *, host: str, power_state: str) -> VmSummary:
    """:class:`VmSummary` from a domain's live XML: the fields :func:`vm_facts_from_xml` gives
    them, without the reads only the full facts need (snapshots, inactive XML, autostart).
    libvirt has no templates: ``template`` stays unknown, for the caller to ask as before."""
    root = ET.fromstring(xml)
    return VmSummary(name=root.findtext("name") or "", host=host, power_state=power_state,
                     vcpus=_vcpus(root), memory_mib=_memory_mib(root.find("memory")),
                     placement=_placement_from(root))


def vm_facts_from_xml(
    xml: str,
    *,
    host: str,
    power_state: str,
    persistent: bool,
    autostart: bool,
    snapshots: tuple[str, ...] = (),
    config_xml: str | None = None,
) -> VmFacts:
    """:class:`VmFacts` from a domain's XML (live XML for state, inactive XML for the digest)."""
    root = ET.fromstring(xml)
    os_el = root.find("os")
    type_el = os_el.find("type") if os_el is not None else None
    loader = os_el.find("loader") if os_el is not None else None
    efi = (os_el is not None and os_el.get("firmware") == "efi") or (
        loader is not None and loader.get("type") == "pflash"
    )
    vcpus = _vcpus(root)
    memory = _memory_mib(root.find("memory"))
    max_memory = _memory_mib(root.find("maxMemory")) or memory
    disks, nics, devices = _devices_from(root)
    native = config_xml if config_xml is not None else xml
    return VmFacts(
        name=root.findtext("name") or "",
        uuid=root.findtext("uuid") or "",
        host=host,
        power_state=power_state,
        persistent=persistent,
        autostart=autostart,
        vcpus=vcpus,
        memory_mib=memory,
        max_memory_mib=max_memory,
        os_type=type_el.text.strip() if type_el is not None and type_el.text else None,
        arch=type_el.get("arch") if type_el is not None else None,
        machine=type_el.get("machine") if type_el is not None else None,
        firmware="efi" if efi else "bios",
        secure_boot=loader is not None and loader.get("secure") == "yes",
        disks=tuple(disks),
        nics=tuple(nics),
        devices=tuple(sorted(devices)),
        snapshots=snapshots,
        placement=_placement_from(root),
        config_digest=hashlib.sha256(native.encode()).hexdigest(),
    )


def define_xml(config: VmConfig, *, arch: str, domain_type: str, disk_path: str | None) -> str:
    """The domain XML of a :class:`VmConfig` (its fields; ``disk_path`` adds it as a qcow2
    virtio disk ``vda``)."""
    devices = ""
    if disk_path is not None:
        devices = (
            "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file={quoteattr(disk_path)}/><target dev='vda' bus='virtio'/>"
            "</disk></devices>"
        )
    return (
        f"<domain type={quoteattr(domain_type)}><name>{escape(config.name)}</name>"
        f"<memory unit='MiB'>{int(config.memory_mib)}</memory>"
        f"<vcpu>{int(config.vcpus)}</vcpu>"
        f"<os><type arch={quoteattr(arch)}>{escape(config.os_type)}</type></os>"
        "<on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>"
        f"{devices}</domain>"
    )


def renamed_definition(xml: str, name: str) -> ET.Element:
    """A domain's inactive XML under a new name, without its UUID and MAC addresses (libvirt
    assigns new ones when it is defined)."""
    root = ET.fromstring(xml)
    root.find("name").text = name  # type: ignore[union-attr]
    for element in root.findall("uuid"):
        root.remove(element)
    for iface in root.findall("devices/interface"):
        for mac in iface.findall("mac"):
            iface.remove(mac)
    return root


def osinfo_id(xml: str) -> str | None:
    """The libosinfo id of a domain's guest OS (``<metadata><libosinfo:libosinfo><libosinfo:os
    id=...>``), or None when the definition names none."""
    node = ET.fromstring(xml).find(f"metadata/{{{OSINFO_NS}}}libosinfo/{{{OSINFO_NS}}}os")
    return node.get("id") if node is not None and node.get("id") else None

