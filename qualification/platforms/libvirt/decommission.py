"""Decommissioning a VM through libvirt, observed afterwards (``decommission``; docs/conversion.md).

What may be removed was decided before the run (the plan refuses while evidence does not
verify, a dependent is declared or backups are not observed retained:
:mod:`qualification.baseline.decommission`). Here the domain is stopped and undefined and its
file disks deleted through libvirt (the disk's pool, else a transient ``dir`` pool on its
directory, so it works on a remote hypervisor) unless the site declares the storage
retained; then the domain and each disk are looked up again: the observation is what is
still there, not what was asked for.
"""

from __future__ import annotations

from typing import Any

import libvirt

from qualification.errors import PlatformError
from qualification.platforms.base import probe_observation
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.clones import _file_disks, _volume_at
from qualification.platforms.oq import utc_stamp

STORAGE = ("delete", "retain")


def _disk_present(conn: Any, path: str) -> bool:
    """Whether the file ``path`` is there, as libvirt on the hypervisor sees it."""
    with _volume_at(conn, path) as vol:
        return vol is not None


def _state(platform: LibvirtPlatform, name: str, disks: list[str]) -> dict[str, Any]:
    conn = platform.conn
    exists = True
    power = None
    try:
        dom = conn.lookupByName(name)
        power = "running" if dom.isActive() else "stopped"
    except libvirt.libvirtError:
        exists = False
    return {"exists": exists, "power_state": power,
            "disks": {path: _disk_present(conn, path) for path in disks}}


def decommission(platform: LibvirtPlatform, name: str, storage: str) -> dict[str, Any]:
    """Remove domain ``name`` (and its file disks unless ``storage`` is ``retain``) and
    observe the result: an observation whose value is ``{vm, storage, before, after}`` and
    whose action ``vm.decommission`` records the state before and after."""
    if storage not in STORAGE:
        return probe_observation(error=f"storage must be one of {', '.join(STORAGE)}, not {storage!r}")
    conn = platform.conn
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        return probe_observation(error=f"no domain {name!r} to decommission: {exc.get_error_message()}")
    disks = [path for _dev, path, _fmt in _file_disks(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))]
    started = utc_stamp()
    before = _state(platform, name, disks)
    reason = None
    try:
        if dom.isActive():
            dom.destroy()
        flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        dom.undefineFlags(flags)
        if storage == "delete":
            for path in disks:
                with _volume_at(conn, path) as vol:
                    if vol is None:
                        raise PlatformError(f"disk {path} is not reachable through libvirt")
                    vol.delete(0)
    except (libvirt.libvirtError, PlatformError) as exc:
        reason = exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else exc.one_line()
    after = _state(platform, name, disks)
    action = {
        "name": "vm.decommission", "target": name, "before": before, "after": after,
        "verdict": "fail" if reason else "pass", "reason": reason,
        "started": started, "finished": utc_stamp(),
    }
    value = {"vm": name, "storage": storage, "before": before, "after": after, "error": reason}
    return probe_observation(
        value=value, actions=[action],
        method=f"libvirt destroy, undefine{', delete volumes' if storage == 'delete' else ''}, "
        f"lookups {platform.endpoint}",
    )
