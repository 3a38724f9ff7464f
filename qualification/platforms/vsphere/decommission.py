"""Decommissioning a VM through vSphere, observed afterwards (``decommission``; docs/vsphere.md).

What may be removed was decided before the run (the plan refuses while evidence does not
verify, a dependent is declared or backups are not observed retained:
:mod:`qualification.baseline.decommission`). Here the VM is powered off and destroyed
(``Destroy_Task``: vSphere deletes its files) or, where the site declares its storage
retained, unregistered (``UnregisterVM``: its files stay on the datastore). Then the inventory
is asked again for the VM and each of its files is looked up with the datastore browser
(``SearchDatastore_Task``): the observation is what is still there, not what was asked for.
The files are those the browser lists in the VM's folder before the removal, plus its disks'
backing files wherever they are.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import probe_observation
from qualification.platforms.oq import utc_stamp
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.connection import vim

STORAGE = ("delete", "retain")


def split_path(path: str) -> tuple[str, str, str]:
    """``"[ds] dir/file"`` as ``(datastore, folder, file)``."""
    store, _, rest = path.partition("]")
    folder, _, name = rest.strip().rpartition("/")
    return store.lstrip("["), folder, name


class _Browser:
    """The datastore browser of each datastore, one listing per folder and observation."""

    def __init__(self, platform: VspherePlatform) -> None:
        self.platform = platform
        self.stores = {str(props.get("name")): props.get("browser")
                       for _obj, props in platform._retrieve(vim.Datastore, ["name", "browser"])}
        self.listed: dict[tuple[str, str], set[str]] = {}

    def listing(self, store: str, folder: str) -> set[str]:
        """The file names in ``[store] folder``; empty when the folder is gone."""
        key = (store, folder)
        if key not in self.listed:
            self.listed[key] = self._search(store, folder)
        return self.listed[key]

    def _search(self, store: str, folder: str) -> set[str]:
        browser = self.stores.get(store)
        if browser is None:
            raise PlatformError(f"datastore {store} is not in the inventory",
                                where=self.platform.endpoint)
        where = f"[{store}] {folder}".rstrip()
        p = self.platform
        spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*"])
        task = p._call("browse", where, browser.SearchDatastore_Task, datastorePath=where,
                       searchSpec=spec)
        deadline = time.monotonic() + 60.0
        while True:
            state, err, result = p._task_state("browse", where, task)
            if state == "success":
                return {str(f.path) for f in getattr(result, "file", None) or []}
            if state == "error":
                if isinstance(err, vim.fault.FileNotFound):
                    return set()  # the folder itself is gone
                raise PlatformError(f"browse {where} failed: {getattr(err, 'msg', err)}",
                                    where=p.endpoint)
            if time.monotonic() > deadline:
                raise PlatformError(f"browse {where} failed: task did not finish in time",
                                    where=p.endpoint)
            time.sleep(0.05)  # polling the task, as VsphereConnection._wait does

    def present(self, path: str) -> bool:
        store, folder, name = split_path(path)
        return name in self.listing(store, folder)


def vm_files(platform: VspherePlatform, browser: _Browser, config: Any) -> list[str]:
    """Every file of the VM: its folder's listing (the .vmx's folder) and its disks."""
    vmx = str(getattr(getattr(config, "files", None), "vmPathName", "") or "")
    found: set[str] = set()
    if vmx:
        store, folder, _name = split_path(vmx)
        prefix = f"[{store}] {folder}/" if folder else f"[{store}] "
        found |= {prefix + name for name in browser.listing(store, folder)}
        found.add(vmx)
    devices = getattr(getattr(config, "hardware", None), "device", None) or []
    for device in devices:
        if isinstance(device, vim.vm.device.VirtualDisk):
            name = getattr(getattr(device, "backing", None), "fileName", None)
            if name:
                found.add(str(name))
    return sorted(found)


def _state(platform: VspherePlatform, name: str, files: Iterable[str]) -> dict[str, Any]:
    browser = _Browser(platform)  # a new one: listings read after the removal, not before
    power = None
    exists = platform.vm_exists(name)
    if exists:
        power = platform.vm(name).power_state
    return {"exists": exists, "power_state": power,
            "files": {path: browser.present(path) for path in files}}


def decommission(platform: VspherePlatform, name: str, storage: str) -> dict[str, Any]:
    """Remove VM ``name`` (its files too unless ``storage`` is ``retain``) and observe the
    result: an observation whose value is ``{vm, storage, before, after, error}`` and whose
    action ``vm.decommission`` records the state before and after."""
    if storage not in STORAGE:
        return probe_observation(error=f"storage must be one of {', '.join(STORAGE)}, not {storage!r}")
    try:
        _obj, props = platform._vm_obj(name)
    except PlatformError as exc:
        return probe_observation(error=f"no VM {name!r} to decommission: {exc.one_line()}")
    files = vm_files(platform, _Browser(platform), props.get("config"))
    started = utc_stamp()
    before = _state(platform, name, files)
    reason = None
    try:
        platform.power_off(name)  # no-op when it is off; a running VM is neither destroyed nor unregistered
        platform.delete_vm(name, delete_storage=storage == "delete")
    except (PlatformError, NotSupported) as exc:
        reason = exc.one_line()
    after = _state(platform, name, files)
    action = {
        "name": "vm.decommission", "target": name, "before": before, "after": after,
        "verdict": "fail" if reason else "pass", "reason": reason,
        "started": started, "finished": utc_stamp(),
    }
    value = {"vm": name, "storage": storage, "before": before, "after": after, "error": reason}
    removal = "Destroy_Task" if storage == "delete" else "UnregisterVM"
    return probe_observation(
        value=value, actions=[action],
        method=f"vSphere PowerOffVM_Task, {removal}, inventory lookup, "
        f"HostDatastoreBrowser.SearchDatastore_Task {platform.endpoint}",
    )
