"""Check types for Hyper-V hosts, answered by probe ``hyperv`` on the controller over WinRM.

One Hyper-V target is one host (a failover cluster's nodes are separate targets with the same
``vqual_cluster``); cluster homogeneity is therefore the standard ``same_across_hosts``
expectation over ``hyperv_host`` fields, which names each differing host with its value.

- ``hyperv_host``: a field of the host's facts (``Get-ComputerInfo`` and ``Get-VMHost``, with
  enumeration numbers turned into their documented names);
- ``hyperv_cmdlet``: a property of the objects of one read-only cmdlet from the adapter's
  allow-list (HV-05..HV-14); a cmdlet the endpoint does not know is ``not-executed``;
- ``hyperv_vswitch``: one setting of every virtual switch as ``{switch: value}``;
- ``hyperv_features`` and ``hyperv_hcl`` observe findings, one per difference; the
  expectation is ``{op: absent}``;
- ``hyperv_vm`` and ``hyperv_oq`` as their vSphere and libvirt counterparts.

No real Hyper-V host was available to test these against: see ``docs/hyperv.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qualification.checks.base import Observed, ProbeRequest, StepNotExecuted, lifecycle_measured
from qualification.checks.base import unknown_params as _unknown_params
from qualification.checks.hcl import HclEntry, hcl_findings
from qualification.checks.hcl import value_at as _at
from qualification.checks.registry import register
from qualification.checks.vocabulary import LIFECYCLE_STEPS, READ_CMDLETS
from qualification.checks.vsphere import _show

#: Dotted paths into the host's facts (``HypervPlatform.host_details``).
HOST_FIELDS = (
    "name",
    "domain",
    "product.name",
    "product.version",
    "product.build",
    "product.build_lab",
    "product.edition",
    "product.installation_type",
    "product.display_version",
    "hardware.vendor",
    "hardware.model",
    "bios.vendor",
    "bios.version",
    "bios.firmware_type",
    "cpu.packages",
    "cpu.logical",
    "memory_bytes",
    "hypervisor_present",
    "vbs_status",
    "vmhost.virtual_hard_disk_path",
    "vmhost.virtual_machine_path",
    "vmhost.enhanced_session_mode",
    "vmhost.numa_spanning",
    "vmhost.migration_enabled",
    "vmhost.migration_authentication",
    "vmhost.migration_performance",
    "vmhost.migration_any_network",
    "vmhost.max_vm_migrations",
    "vmhost.max_storage_migrations",
    "vmhost.iov_support",
)
VSWITCH_FIELDS = ("switch_type", "allow_management_os", "net_adapter", "iov_enabled")
VM_FIELDS = (
    "power_state",
    "host",
    "vcpus",
    "memory_mib",
    "machine",
    "firmware",
)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(_nonempty_str(v) for v in value)


@dataclass
class HypervHost:
    """A field of the host's facts: product, build, installation type, hardware, BIOS, CPU,
    memory, VBS status and the Hyper-V host settings (HV-01, HV-03, HV-04, HV-06)."""

    name: str = "hyperv_host"
    description: str = (
        "a field of the Hyper-V host (Get-ComputerInfo, Get-VMHost): product, version, build, "
        "installation type, hardware, BIOS, CPU, memory, VBS, storage paths, enhanced session "
        "mode, live migration settings (HV-01, HV-03, HV-04, HV-06)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "field" not in params:
            return f"{self.name}: parameter field is required"
        bad = _unknown_params(self.name, params, {"field"})
        if bad:
            return bad
        if params["field"] not in HOST_FIELDS:
            return f"{self.name}: parameter field must be one of {', '.join(HOST_FIELDS)}"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "host", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return _at(value, params["field"])


@dataclass
class HypervCmdlet:
    """A property of the objects one read-only cmdlet writes.

    ``field`` (dotted) selects a property; without it the objects themselves are observed
    (``Confirm-SecureBootUEFI`` writes one boolean). Objects are named by their ``key``
    property (default ``Name``). Observed:

    - by default: one object's value, or ``{<key>: value}`` for several; with ``name`` the
      value of the object whose key is ``name``;
    - with ``as_list: true``: the sorted values of every object (group members);
    - with ``want: <value>``: one finding per object whose value differs, naming it (expect
      ``{op: absent}``); no object, no finding.
    """

    name: str = "hyperv_cmdlet"
    description: str = (
        "a property of a read-only cmdlet's objects on the Hyper-V host (Confirm-SecureBootUEFI, "
        "Get-Tpm, Get-BitLockerVolume, Get-MpPreference, Get-VMProcessor, Get-ClusterNode, ...); "
        "not-executed where the endpoint does not know the cmdlet (HV-05..HV-13)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        allowed = {"cmdlet", "field", "key", "name", "as_list", "want"}
        bad = _unknown_params(self.name, params, allowed)
        if bad:
            return bad
        if params.get("cmdlet") not in READ_CMDLETS:
            return f"{self.name}: parameter cmdlet must be one of {', '.join(READ_CMDLETS)}"
        for param in ("field", "key", "name"):
            if param in params and not _nonempty_str(params[param]):
                return f"{self.name}: parameter {param} must be a non-empty string"
        if "as_list" in params and not isinstance(params["as_list"], bool):
            return f"{self.name}: parameter as_list must be true or false"
        modes = [m for m in ("name", "as_list", "want") if params.get(m) not in (None, False)]
        if len(modes) > 1:
            return f"{self.name}: give at most one of name, as_list, want"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "cmdlet", {"cmdlet": params["cmdlet"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        objects: Sequence[Any] = value
        key = params.get("key", "Name")
        field = params.get("field")

        def pick(obj: Any) -> Any:
            return _at(obj, field) if field else obj

        def label(obj: Any) -> str:
            return str(_at(obj, key)) if isinstance(obj, Mapping) else _show(obj)

        if "name" in params:
            found = [o for o in objects if isinstance(o, Mapping) and _at(o, key) == params["name"]]
            if not found:
                names = sorted(label(o) for o in objects)
                raise ValueError(
                    f"{params['cmdlet']} wrote no object with {key} {params['name']!r} "
                    f"(found: {', '.join(names) or 'none'})"
                )
            return pick(found[0])
        if params.get("as_list"):
            return sorted((pick(o) for o in objects), key=_show)
        if "want" in params:
            return [
                f"{params['cmdlet']} {label(o)}: {field or 'value'} is {_show(pick(o))}, "
                f"want {_show(params['want'])}"
                for o in objects
                if pick(o) != params["want"]
            ]
        if not objects:
            return None  # the cmdlet wrote nothing: absent
        if len(objects) == 1:
            return pick(objects[0])
        return {label(o): pick(o) for o in objects}


@dataclass
class HypervFeatures:
    """Required Windows features are installed and nothing else is (HV-02)."""

    name: str = "hyperv_features"
    description: str = (
        "the required Windows roles and features (Get-WindowsFeature) are installed, and with "
        "`allowed` no other is; one finding per missing or unexpected feature (HV-02)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        bad = _unknown_params(self.name, params, {"required", "allowed"})
        if bad:
            return bad
        if not _str_list(params.get("required")) or not params["required"]:
            return f"{self.name}: parameter required must be a non-empty list of feature names"
        if "allowed" in params and not _str_list(params["allowed"]):
            return f"{self.name}: parameter allowed must be a list of feature names"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "features", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        installed = sorted(name for name, on in value.items() if on)
        findings = [
            f"{name} is not installed" if name in value else f"{name} is not known to the host"
            for name in params["required"]
            if name not in installed
        ]
        if "allowed" in params:
            allowed = set(params["required"]) | set(params["allowed"])
            findings.extend(
                f"{name} is installed but not allowed" for name in installed if name not in allowed
            )
        return findings


@dataclass
class HypervVswitch:
    """One setting of every virtual switch, ``{switch: value}``, to compare with the design
    (HV-08: switch types, management OS separated)."""

    name: str = "hyperv_vswitch"
    description: str = (
        "a setting of every Hyper-V virtual switch (Get-VMSwitch) as {switch: value}: switch "
        "type, management OS sharing, uplink adapter, SR-IOV (HV-08)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        bad = _unknown_params(self.name, params, {"field"})
        if bad:
            return bad
        if params.get("field") not in VSWITCH_FIELDS:
            return f"{self.name}: parameter field must be one of {', '.join(VSWITCH_FIELDS)}"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "vswitches", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return {str(s["name"]): s.get(params["field"]) for s in value}


@dataclass
class HypervHcl:
    """The host's server model, BIOS and Windows Server version are on the HCL."""

    name: str = "hyperv_hcl"
    description: str = (
        "the Hyper-V host's manufacturer, model and BIOS are on the hardware compatibility list "
        "for its Windows Server version (data file, docs/hcl.md); each miss names the host and values"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if not _nonempty_str(params.get("hcl")):
            return f"{self.name}: parameter hcl (the name of a data file of the spec) is required"
        return _unknown_params(self.name, params, {"hcl"})

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "hcl", {"hcl": params["hcl"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        entries = [
            HclEntry(
                vendor=e["vendor"],
                model=e["model"],
                firmware=tuple(e["firmware"]),
                product=e["product"],
                versions=tuple(e["versions"]),
                reference=e.get("reference", ""),
            )
            for e in value["entries"]
        ]
        return hcl_findings(value["hosts"], entries)


@dataclass
class HypervVm:
    """A field of one VM (Get-VM): power state, processors, memory, generation, firmware."""

    name: str = "hyperv_vm"
    description: str = "a field of one Hyper-V VM (Get-VM): power state, vCPUs, memory, generation"

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if not _nonempty_str(params.get("vm")):
            return f"{self.name}: parameter vm (a VM name) is required"
        bad = _unknown_params(self.name, params, {"vm", "field"})
        if bad:
            return bad
        if params.get("field") not in VM_FIELDS:
            return f"{self.name}: parameter field must be one of {', '.join(VM_FIELDS)}"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "vm", {"name": params["vm"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return value[params["field"]]


@dataclass
class HypervOq:
    """One step of the OQ lifecycle on a throwaway VM, as ``libvirt_oq``."""

    name: str = "hyperv_oq"
    description: str = (
        "an OQ lifecycle step on a throwaway Hyper-V VM: create, power on, power off, checkpoint "
        "create/restore/delete, remove; not-executed where the endpoint cannot change state"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        bad = _unknown_params(self.name, params, {"step"})
        if bad:
            return bad
        if params.get("step") not in LIFECYCLE_STEPS:
            return f"{self.name}: parameter step must be one of {', '.join(LIFECYCLE_STEPS)}"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "oq_lifecycle", {"steps": list(LIFECYCLE_STEPS)})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        steps = value["steps"]
        step = steps[params["step"]]
        measured = lifecycle_measured(value, params["step"])
        if step["verdict"] != "not-executed":
            return Observed(step["verdict"], step.get("reason"), measured)
        reason = str(step.get("reason") or f"step {params['step']} was not executed")
        # A step skipped because an earlier one could not run carries that step's reason too,
        # so each test says why (on the stand-in: no real Hyper-V available).
        first = next((s for s in steps.values() if s["verdict"] == "not-executed"), None)
        if first is not None and first is not step and first.get("reason"):
            reason = f"{reason}: {first['reason']}"
        raise StepNotExecuted(reason, measured)


VALIDATION_REPORTS = "C:\\Windows\\Cluster\\Reports"
_PS_DATE = re.compile(r"^\\?/Date\((-?\d+)[^)]*\)\\?/$")


def file_time(value: Any) -> datetime | None:
    """A FileInfo time as ConvertTo-Json writes it: ``/Date(ms)/`` (5.1) or ISO 8601 (7.x)."""
    if not isinstance(value, str):
        return None
    found = _PS_DATE.match(value)
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class HypervValidationReport:
    """The newest failover cluster validation report the host keeps (HV-12).

    ``Test-Cluster`` writes each run's report to ``C:\\Windows\\Cluster\\Reports`` as
    ``Validation Report <date>.htm``. The listing (``Get-ChildItem``, System.IO.FileInfo) is
    a documented format; the report's content is an HTML page whose layout Microsoft does not
    document. So: no report, or a newest report older than ``max_age_days``, is a finding;
    a recent report is ``not-executed`` with its name and time, because its results (all
    passed, warnings justified) are read by the reviewer, never guessed by vqual.
    """

    name: str = "hyperv_validation_report"
    description: str = (
        "the newest Test-Cluster validation report in C:\\Windows\\Cluster\\Reports exists and "
        "is recent; its HTML results are for the reviewer (not-executed with its name) (HV-12)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        bad = _unknown_params(self.name, params, {"max_age_days"})
        if bad:
            return bad
        age = params.get("max_age_days", 365)
        if isinstance(age, bool) or not isinstance(age, int) or age <= 0:
            return f"{self.name}: parameter max_age_days must be a positive whole number"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("hyperv", "cmdlet", {"cmdlet": "Cluster-ValidationReports"})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        dated = []
        for obj in value or []:
            if isinstance(obj, Mapping):
                when = file_time(obj.get("LastWriteTimeUtc")) or file_time(obj.get("LastWriteTime"))
                if when is not None:
                    dated.append((when, str(obj.get("Name") or obj.get("FullName") or "?")))
        if not dated:
            return [f"no cluster validation report in {VALIDATION_REPORTS} (Test-Cluster not run)"]
        when, name = max(dated)
        limit = int(params.get("max_age_days", 365))
        age_days = (datetime.now(UTC) - when).total_seconds() / 86400
        if age_days > limit:
            old = f"{age_days:.0f} days old (limit {limit})"
            return [f"newest validation report {name} is from {when:%Y-%m-%dT%H:%M:%SZ}, {old}"]
        raise StepNotExecuted(
            f"newest validation report {name} ({when:%Y-%m-%dT%H:%M:%SZ}) found; its results "
            "are an HTML page without a documented layout, so the reviewer reads them"
        )


for _check in (
    HypervHost(),
    HypervValidationReport(),
    HypervCmdlet(),
    HypervFeatures(),
    HypervVswitch(),
    HypervHcl(),
    HypervVm(),
    HypervOq(),
):
    register(_check)
