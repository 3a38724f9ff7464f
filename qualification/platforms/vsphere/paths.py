"""Redundant paths of vSphere hosts (URS-CL-03): each standard vSwitch's uplinks with their
failover order and link state, and each SCSI LUN's paths with the datastores it backs.

Read in three round trips: the hosts' ``config.network`` and ``config.storageDevice``
(``scsiLun`` and ``multipathInfo``), then the datastores' ``info`` (a VMFS datastore names its
extents' LUNs by canonical name). A datastore that is not VMFS (NFS, vSAN, or vcsim's local
directories) is backed by no LUN of the host and so has no SCSI paths to show.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from qualification.platforms.vsphere.connection import VsphereConnection, _text
from qualification.platforms.vsphere.facts import _vswitches

#: Path states that carry I/O now or take over on failover; the others (dead, disabled,
#: unknown) are failed paths.
WORKING_PATH_STATES = ("active", "standby")


def _uplinks(network: Any) -> list[dict[str, Any]]:
    linked = {
        _text(nic.device): getattr(nic, "linkSpeed", None) is not None
        for nic in getattr(network, "pnic", None) or []
    }
    out = []
    for vs in _vswitches(network):
        out.append({
            "name": vs["name"], "uplinks": vs["uplinks"], "active": vs["active"],
            "standby": vs["standby"],
            # a physical NIC without a link speed has no link (vim.host.PhysicalNic.linkSpeed)
            "links_down": [n for n in vs["uplinks"] if not linked.get(n, False)],
        })
    return out


def _luns(storage: Any, backing: dict[str, list[str]]) -> list[dict[str, Any]]:
    names = {
        _text(lun.key): _text(getattr(lun, "canonicalName", None) or lun.key)
        for lun in getattr(storage, "scsiLun", None) or []
    }
    out = []
    info = getattr(storage, "multipathInfo", None)
    for lun in getattr(info, "lun", None) or []:
        name = names.get(_text(lun.lun), _text(lun.id))
        paths = [
            {"name": _text(p.name), "state": _text(p.pathState)} for p in lun.path or []
        ]
        out.append({
            "name": name, "paths": paths,
            "working_paths": sum(1 for p in paths if p["state"] in WORKING_PATH_STATES),
            "datastores": sorted(backing.get(name, [])),
        })
    return sorted(out, key=lambda lun: str(lun["name"]))


def redundant_paths(conn: VsphereConnection) -> dict[str, Any]:
    """``{"hosts": {host: {"vswitches": [...], "luns": [...]}}, "datastores": {name: {type,
    luns}}}`` for every host in scope and every datastore of the datacenter."""
    stores = conn._retrieve(vim.Datastore, ["name", "summary.type", "info"],
                            conn._scope_root(cluster=False))
    datastores: dict[str, dict[str, Any]] = {}
    backing: dict[str, list[str]] = {}
    for _obj, props in stores:
        name = _text(props.get("name"))
        extents = getattr(getattr(props.get("info"), "vmfs", None), "extent", None) or []
        luns = sorted(_text(e.diskName) for e in extents)
        datastores[name] = {"type": _text(props.get("summary.type")), "luns": luns}
        for lun in luns:
            backing.setdefault(lun, []).append(name)
    rows = conn._retrieve(vim.HostSystem, ["name", "config.network", "config.storageDevice"],
                          conn._scope_root())
    hosts = {
        _text(props.get("name")): {
            "vswitches": _uplinks(props.get("config.network")),
            "luns": _luns(props.get("config.storageDevice"), backing),
        }
        for _obj, props in rows
    }
    return {"hosts": dict(sorted(hosts.items())), "datastores": datastores}
