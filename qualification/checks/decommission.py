"""Check type ``vm_decommission``: a VM removed through its platform, observed gone.

The OQ step of a decommissioning run (mode ``decommission``, docs/conversion.md): the platform
probe (method ``decommission`` of the libvirt or vsphere plug-in, the test's ``platform``)
stops and removes the target's VM and deletes its disks (vSphere: its files) unless the
inventory declares its storage retained (``vqual_decommission_storage: retain``), then looks
everything up again. The observed value is the list of what does not match the declaration
(the VM still defined, a disk or file left behind, a retained one gone); the expectation
``absent`` passes on an empty list. In check mode nothing is removed (``not-executed``).
Whether the VM may be removed at all was decided when the run was planned
(:mod:`qualification.baseline.decommission`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qualification.checks.base import ProbeRequest
from qualification.checks.registry import register

VM_DECOMMISSION = "vm_decommission"
METHOD = "decommission"
#: The platforms whose plug-in removes a VM (its probe answers ``decommission``).
PLATFORMS = ("libvirt", "vsphere")
#: The inventory variable declaring what happens to the VM's disks: ``delete`` (default) or
#: ``retain``.
STORAGE_VAR = "vqual_decommission_storage"


def with_storage(requests: Sequence[Mapping[str, Any]], host_vars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Decommission requests with the inventory's storage declaration (key unchanged)."""
    out = []
    for r in requests:
        r = dict(r)
        if r.get("method") == METHOD:
            r["args"] = {**dict(r.get("args") or {}), "storage": str(host_vars.get(STORAGE_VAR) or "delete")}
        out.append(r)
    return out


def problems(value: Mapping[str, Any]) -> list[str]:
    """What the state after the removal shows that the declaration does not allow."""
    after = value.get("after") or {}
    found = []
    if value.get("error"):
        found.append(f"the platform refused a step: {value['error']}")
    if after.get("exists"):
        found.append(f"VM {value.get('vm')} is still defined ({after.get('power_state')})")
    retain = value.get("storage") == "retain"
    # libvirt observes the domain's disks, vSphere every file of the VM on its datastores.
    for what, key in (("disk", "disks"), ("file", "files")):
        for path, present in sorted((after.get(key) or {}).items()):
            if present and not retain:
                found.append(f"{what} {path} is still present (declared: delete)")
            elif not present and retain:
                found.append(f"{what} {path} is gone (declared: retain)")
    return found


@dataclass
class VmDecommissionCheck:
    """A VM removed through its platform, and observed gone."""

    name: str = VM_DECOMMISSION
    description: str = (
        "removes the target VM through the platform (OQ step, decommissioning) and observes "
        "that it and its disks are gone, or its disks retained where the inventory declares so"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        unknown = sorted(set(params) - {"platform"})
        if unknown:
            return f"{self.name}: unknown parameter(s) {', '.join(unknown)} (allowed: platform)"
        platform = params.get("platform", "libvirt")
        if platform not in PLATFORMS:
            return (f"{self.name}: platform {platform} cannot remove a VM through vqual "
                    f"(platforms that can: {', '.join(PLATFORMS)})")
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        # The VM's name and the storage declaration come from the inventory at run time.
        return ProbeRequest(str(params.get("platform", "libvirt")), METHOD, {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError("the platform returned no decommission result")
        return problems(value)


register(VmDecommissionCheck())
