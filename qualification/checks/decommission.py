"""Check type ``vm_decommission``: a VM removed through its platform, observed gone.

The OQ step of a decommissioning run (mode ``decommission``, docs/conversion.md): the platform
probe (libvirt method ``decommission``) stops and undefines the target's VM and deletes its
disks unless the inventory declares its storage retained (``vqual_decommission_storage:
retain``), then looks everything up again. The observed value is the list of what does not
match the declaration (the VM still defined, a disk left behind, a retained disk gone); the
expectation ``absent`` passes on an empty list. In check mode nothing is removed
(``not-executed``). Whether the VM may be removed at all was decided when the run was planned
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
    for path, present in sorted((after.get("disks") or {}).items()):
        if present and not retain:
            found.append(f"disk {path} is still present (declared: delete)")
        elif not present and retain:
            found.append(f"disk {path} is gone (declared: retain)")
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
        if params.get("platform", "libvirt") != "libvirt":
            return f"{self.name}: parameter platform must be libvirt (the platform that supports it)"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        # The VM's name and the storage declaration come from the inventory at run time.
        return ProbeRequest("libvirt", METHOD, {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError("the platform returned no decommission result")
        return problems(value)


register(VmDecommissionCheck())
