"""vSphere objects read into plain JSON facts: host details (time, DNS, virtual switches,
port groups, physical NICs), VM devices, snapshot trees, security policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from qualification.platforms.base import (
    RUNNING,
    STOPPED,
    SUSPENDED,
    UNKNOWN,
    DiskFacts,
    NicFacts,
    VmSummary,
)
from qualification.platforms.vsphere.connection import _text, vim

POWER = {"poweredOn": RUNNING, "poweredOff": STOPPED, "suspended": SUSPENDED}

#: What a light VM listing reads (VQ-90): not ``config``, whose devices, extra configuration
#: and the rest cost the simulator and the wire most of a full listing's time.
SUMMARY_PROPS = ("name", "runtime.powerState", "runtime.host", "config.template",
                 "config.hardware.numCPU", "config.hardware.memoryMB")


def vm_summaries_of(rows: Iterable[tuple[Any, Mapping[str, Any]]],
                    host_names: Mapping[str, str]) -> list[VmSummary]:
    """:class:`VmSummary` rows of a ``SUMMARY_PROPS`` retrieval, sorted by name. vSphere has
    no VM-host placement the adapter models, so ``placement`` is empty, as in ``vms()``."""
    out = []
    for _obj, props in rows:
        host = props.get("runtime.host")
        out.append(VmSummary(
            name=str(props.get("name")),
            host=host_names.get(str(getattr(host, "_moId", "")), "") if host else "",
            power_state=POWER.get(str(props.get("runtime.powerState")), UNKNOWN),
            vcpus=int(props.get("config.hardware.numCPU") or 0),
            memory_mib=int(props.get("config.hardware.memoryMB") or 0),
            template=bool(props.get("config.template", False))))
    return sorted(out, key=lambda v: v.name)


def _dvportgroups(rows: Iterable[tuple[Any, Mapping[str, Any]]],
                  uplinks: set[str]) -> list[dict[str, Any]]:
    """Port groups with their default security policy, uplink port groups left out."""
    out = []
    for obj, props in rows:
        tags = {getattr(t, "key", "") for t in props.get("tag") or []}
        if props.get("config.uplink") or obj._moId in uplinks or "SYSTEM/DVS.UPLINKPG" in tags:
            continue
        policy = getattr(props.get("config.defaultPortConfig"), "securityPolicy", None)
        security = None
        if policy is not None:
            security = {}
            for key in ("allowPromiscuous", "macChanges", "forgedTransmits"):
                value = getattr(getattr(policy, key, None), "value", None)
                security[key] = None if value is None else bool(value)
        out.append({"name": str(props.get("name")), "security": security})
    return sorted(out, key=lambda pg: str(pg["name"]))


def _option_values(entries: Mapping[str, str] | None) -> list[Any]:
    return [vim.option.OptionValue(key=k, value=v) for k, v in (entries or {}).items()]


def _walk_snapshots(tree: Any) -> Iterable[Any]:
    stack = list(getattr(tree, "rootSnapshotList", None) or [])
    while stack:
        node = stack.pop(0)
        yield node
        stack[0:0] = list(node.childSnapshotList or [])


def _security(policy: Any) -> dict[str, bool | None]:
    sec = getattr(policy, "security", None) if policy is not None else None
    return {
        key: (None if getattr(sec, key, None) is None else bool(getattr(sec, key)))
        for key in ("allowPromiscuous", "macChanges", "forgedTransmits")
    }


def _host_details(props: Mapping[str, Any]) -> dict[str, Any]:
    """One host's properties (as :data:`HOST_PROPERTIES` reads them) as plain JSON."""
    system = props.get("hardware.systemInfo")
    bios = props.get("hardware.biosInfo")
    cpu = props.get("hardware.cpuInfo")
    pkgs = props.get("hardware.cpuPkg") or []
    summary_hw = props.get("summary.hardware")
    product = props.get("config.product")
    network = props.get("config.network")
    dt = props.get("config.dateTimeInfo")
    services = getattr(props.get("config.service"), "service", None) or []
    release = getattr(bios, "releaseDate", None)
    parent_name = _text(props.get("parent.name"))
    threads = int(getattr(cpu, "numCpuThreads", 0) or 0)
    return {
        "name": _text(props.get("name")),
        "cluster": parent_name if props.get("parent.is_cluster") else None,
        "hardware": {
            "vendor": _text(getattr(system, "vendor", None)),
            "model": _text(getattr(system, "model", None)),
            "uuid": _text(getattr(system, "uuid", None)),
        },
        "bios": {
            "vendor": _text(getattr(bios, "vendor", None)),
            "version": _text(getattr(bios, "biosVersion", None)),
            "date": release.date().isoformat() if isinstance(release, datetime) else _text(release),
        },
        "cpu": {
            # summary.hardware.cpuModel is what vSphere shows per host; cpuPkg per socket
            "model": _text(getattr(summary_hw, "cpuModel", None)),
            "package_models": sorted({_text(p.description) for p in pkgs}),
            "vendor": _text(getattr(pkgs[0], "vendor", None)) if pkgs else "",
            "packages": int(getattr(cpu, "numCpuPackages", 0) or 0),
            "cores": int(getattr(cpu, "numCpuCores", 0) or 0),
            "threads": threads,
            "mhz": int((getattr(cpu, "hz", 0) or 0) // 1_000_000),
        },
        "memory_bytes": int(props.get("hardware.memorySize") or 0),
        "product": {
            "name": _text(getattr(product, "name", None)),
            "full_name": _text(getattr(product, "fullName", None)),
            "version": _text(getattr(product, "version", None)),
            "build": _text(getattr(product, "build", None)),
        },
        "lockdown_mode": _text(props.get("config.lockdownMode")),
        "services": {
            _text(s.key): {"running": bool(s.running), "policy": _text(s.policy)} for s in services
        },
        "time": _host_time(dt),
        "dns": _host_dns(getattr(network, "dnsConfig", None)),
        "vswitches": _vswitches(network),
        "portgroups": _portgroups(network),
        "pnics": _pnics(network),
        "datastores": sorted(_text(d) for d in props.get("datastore") or []),
        "networks": sorted(_text(n) for n in props.get("network") or []),
        "connection_state": _text(props.get("runtime.connectionState")),
        "in_maintenance": bool(props.get("runtime.inMaintenanceMode")),
        "overall_status": _text(props.get("overallStatus")),
    }


def _host_time(dt: Any) -> dict[str, Any] | None:
    """A host's NTP servers and time zone; None when it reports no dateTimeInfo."""
    if dt is None:
        return None
    ntp = getattr(dt, "ntpConfig", None)
    return {
        "ntp_servers": [str(s) for s in getattr(ntp, "server", None) or []],
        "time_zone": _text(getattr(getattr(dt, "timeZone", None), "key", None)),
    }


def _host_dns(dns: Any) -> dict[str, Any] | None:
    """A host's DNS configuration; None when it reports none."""
    if dns is None:
        return None
    return {
        "dhcp": bool(getattr(dns, "dhcp", False)),
        "host_name": _text(getattr(dns, "hostName", None)),
        "domain_name": _text(getattr(dns, "domainName", None)),
        "servers": [str(a) for a in getattr(dns, "address", None) or []],
        "search_domains": [str(a) for a in getattr(dns, "searchDomain", None) or []],
    }


def _vswitches(network: Any) -> list[dict[str, Any]]:
    """A host's standard vSwitches: uplinks, their failover order and security policy."""
    out = []
    for vs in getattr(network, "vswitch", None) or []:
        policy = getattr(vs.spec, "policy", None)
        order = getattr(getattr(policy, "nicTeaming", None), "nicOrder", None)
        out.append({
            "name": _text(vs.name),
            "uplinks": sorted(_text(p).rsplit("-", 1)[-1] for p in vs.pnic or []),
            # the teaming policy's failover order: active uplinks first, standby ones next
            "active": [_text(n) for n in getattr(order, "activeNic", None) or []],
            "standby": [_text(n) for n in getattr(order, "standbyNic", None) or []],
            "security": _security(policy),
        })
    return out


def _portgroups(network: Any) -> list[dict[str, Any]]:
    """A host's standard port groups: vSwitch, VLAN and the security policy that applies."""
    return [
        {
            "name": _text(pg.spec.name),
            "vswitch": _text(pg.spec.vswitchName),
            "vlan": int(pg.spec.vlanId or 0),
            # computedPolicy is what applies (the switch's unless the port group overrides)
            "security": _security(pg.computedPolicy),
        }
        for pg in getattr(network, "portgroup", None) or []
    ]


def _pnics(network: Any) -> list[dict[str, Any]]:
    """A host's physical NICs: driver and link speed (None when the link is down)."""
    out = []
    for nic in getattr(network, "pnic", None) or []:
        speed = getattr(nic, "linkSpeed", None)
        out.append(
            {
                "device": _text(nic.device),
                "driver": _text(nic.driver),
                "speed_mb": int(speed.speedMb) if speed is not None else None,
                "duplex": bool(speed.duplex) if speed is not None else None,
            }
        )
    return out


# Other virtual devices a VM can carry, by the kind its facts name them; isinstance order.
_DEVICE_KINDS: tuple[tuple[type, str], ...] = (
    (vim.vm.device.VirtualCdrom, "cdrom"),
    (vim.vm.device.VirtualFloppy, "floppy"),
    (vim.vm.device.VirtualSerialPort, "serial"),
    (vim.vm.device.VirtualParallelPort, "parallel"),
    (vim.vm.device.VirtualUSBController, "usb"),
    (vim.vm.device.VirtualPCIPassthrough, "hostdev"),
    (vim.vm.device.VirtualTPM, "tpm"),
)


def _vm_devices(
    devices_in: Iterable[Any],
) -> tuple[list[DiskFacts], list[NicFacts], list[str]]:
    """A VM's virtual hardware as facts: its disks, its NICs, the kinds of its other devices."""
    disks: list[DiskFacts] = []
    nics: list[NicFacts] = []
    devices: list[str] = []
    for dev in devices_in:
        if isinstance(dev, vim.vm.device.VirtualDisk):
            backing = dev.backing
            disks.append(
                DiskFacts(
                    target=_text(dev.deviceInfo.label if dev.deviceInfo else dev.key),
                    device="disk",
                    source=_text(getattr(backing, "fileName", None)) or None,
                    driver_format=_text(getattr(backing, "diskMode", None)) or None,
                )
            )
        elif isinstance(dev, vim.vm.device.VirtualEthernetCard):
            net = getattr(dev.backing, "deviceName", None)
            nics.append(
                NicFacts(
                    mac=_text(dev.macAddress) or None,
                    network=_text(net) or None,
                    model=type(dev).__name__.rsplit(".", 1)[-1].replace("Virtual", "").lower(),
                    kind="network",
                )
            )
        else:
            kind = next((k for cls, k in _DEVICE_KINDS if isinstance(dev, cls)), None)
            if kind is not None:
                devices.append(kind)
    return disks, nics, devices
