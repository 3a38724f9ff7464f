"""Check types for a libvirt hypervisor, answered by probe ``libvirt`` on the controller.

The probe (``qualification.platforms.libvirt.adapter.probe``, module ``libvirt_probe``) returns one
value per method; these check types read a field of it. Every test of a type shares one
request (same method, same arguments), so a hypervisor is observed once per method however
many tests read it; all ``libvirt_oq`` tests share one OQ lifecycle on one throwaway domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qualification.checks.base import Observed, ProbeRequest, StepNotExecuted, lifecycle_measured
from qualification.checks.base import one_of as _one_of
from qualification.checks.base import unknown_params as _unknown_params
from qualification.checks.failover import judge as judge_failover
from qualification.checks.registry import register
from qualification.checks.vocabulary import LIFECYCLE_STEPS

VERSION_FIELDS = ("libvirt_version", "hypervisor_version", "type")
NODEINFO_FIELDS = (
    "cpu_model",
    "memory_mib",
    "cpus",
    "mhz",
    "numa_nodes",
    "sockets_per_node",
    "cores_per_socket",
    "threads_per_core",
)
# Paths into the parsed capabilities (qualification.platforms.libvirt.adapter.parse_capabilities).
CAPABILITY_PATHS = (
    "host.arch",
    "host.cpu_model",
    "host.cpu_vendor",
    "host.features",
    "host.uuid",
    "host.numa_cells",
    "host.secmodels",
    "host.secmodel_dois",
    "guest.os_types",
    "guest.arches",
    "guest.domain_types",
    "guest.machines",
)


@dataclass
class HypervisorVersion:
    """``conn.getVersion()`` / ``getLibVersion()`` / ``getType()`` (KVM-03)."""

    name: str = "hypervisor_version"
    description: str = "libvirt library or hypervisor version, or hypervisor type (KVM-03)"

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _unknown_params(self.name, params, {"field"}) or (
            _one_of(self.name, "field", params["field"], VERSION_FIELDS)
            if "field" in params
            else None
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("libvirt", "version", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return value[params.get("field", "libvirt_version")]


@dataclass
class LibvirtNodeinfo:
    """``virsh nodeinfo`` / ``conn.getInfo()`` field (KVM-05)."""

    name: str = "libvirt_nodeinfo"
    description: str = "a field of the host's node info: CPU model, count, MHz, memory (KVM-05)"

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "field" not in params:
            return f"{self.name}: parameter field is required"
        return _unknown_params(self.name, params, {"field"}) or _one_of(
            self.name, "field", params["field"], NODEINFO_FIELDS
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("libvirt", "nodeinfo", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return value[params["field"]]


def capability(value: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of the parsed capabilities, e.g. ``host.arch``."""
    current: Any = value
    for part in path.split("."):
        current = current[part]
    return current


@dataclass
class LibvirtCapability:
    """A field of ``conn.getCapabilities()``: host arch, guest OS types, secmodel (KVM-09)."""

    name: str = "libvirt_capability"
    description: str = (
        "a field of the hypervisor capabilities: host arch/CPU, security models, guest OS "
        "types, arches, domain types, machines"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "path" not in params:
            return f"{self.name}: parameter path is required"
        return _unknown_params(self.name, params, {"path"}) or _one_of(
            self.name, "path", params["path"], CAPABILITY_PATHS
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("libvirt", "capabilities", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return capability(value, params["path"])


@dataclass
class LibvirtOq:
    """One step of the OQ lifecycle on a throwaway domain (OQ-01, OQ-08).

    The observed value is the step's verdict from the probe: ``pass`` only when the
    operation succeeded and its post-condition held on the state read back; the step's
    before/after states are in the observation's actions, which become ``action`` records.
    """

    name: str = "libvirt_oq"
    description: str = (
        "an OQ lifecycle step on a throwaway domain: define, start, stop, snapshot "
        "create/revert/delete, undefine"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "step" not in params:
            return f"{self.name}: parameter step is required"
        return _unknown_params(self.name, params, {"step"}) or _one_of(
            self.name, "step", params["step"], LIFECYCLE_STEPS
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        # Every step in the request, so all libvirt_oq tests share one lifecycle run.
        return ProbeRequest("libvirt", "oq_lifecycle", {"steps": list(LIFECYCLE_STEPS)})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        step = value["steps"][params["step"]]
        measured = lifecycle_measured(value, params["step"])
        if step["verdict"] == "not-executed":
            raise StepNotExecuted(
                step.get("reason") or f"step {params['step']} was not executed", measured
            )
        return Observed(step["verdict"], step.get("reason"), measured)



GUEST_OQ_TESTS = {
    "migrate": "oq_guest_migrate",
    "backup_restore": "oq_backup_restore",
    # One run on one throwaway guest answers all four (qualification.platforms
    # .libvirt.guest_oq.run_guest_cycle): each test reads its part of the value.
    "clone": "oq_guest_cycle",
    "power_cycle": "oq_guest_cycle",
    "snapshot": "oq_guest_cycle",
    "maintenance": "oq_guest_cycle",
    "failover": "oq_guest_failover",
}
GUEST_OQ_FIELDS = {
    "migrate": ("verdict", "interruption_s", "max_gap_s", "guest_frozen_s", "migration_s"),
    "backup_restore": ("verdict", "marker_read"),
    "clone": ("verdict", "uuid", "macs"),
    "power_cycle": ("verdict", "boot_ids"),
    "snapshot": ("verdict", "marker_read"),
    "maintenance": ("verdict",),
    "failover": ("verdict", "restart_s", "running_s", "marker_read"),
}
CYCLE_TESTS = ("clone", "power_cycle", "snapshot", "maintenance")


@dataclass
class LibvirtGuestOq:
    """OQ on a booted throwaway guest cloned from a template (OQ-01, -02, -04, -07, -08, -09).

    ``test: clone|power_cycle|snapshot|maintenance``: parts of one run on one throwaway
    guest (clone from the template; start, graceful and hard stop, restart with a new boot
    id; snapshot with memory, marker reverted; evacuation, maintenance refusing VMs, leave);
    fields ``verdict`` and, for a part that passed, ``uuid``/``macs`` (clone), ``boot_ids``
    (power_cycle), ``marker_read`` (snapshot). A part not reached or not possible is
    not-executed with the reason.

    ``test: migrate``: live migration to the configured destination with an in-guest
    heartbeat read through the guest agent; fields ``verdict`` and the measured
    ``interruption_s`` (and its parts ``max_gap_s``, ``guest_frozen_s``), ``migration_s``.
    ``load_mib``: memory the guest keeps dirtying during the migration (under load).
    ``test: backup_restore``: marker written, push backup, restored as a new guest, marker
    read back; fields ``verdict``, ``marker_read``. A measurement of a run that did not pass
    is not-executed with the run's reason, never a number.
    ``test: failover``: a host of the HA cluster in ``vqual_libvirt_oq.failover`` fails, the
    HA stack's guest runs again on another host, a marker written before is read back
    (``guest_failover``); fields ``verdict``, ``restart_s`` (failure to the agent answering
    there), ``running_s``, ``marker_read``. A step before the failure that could not be
    taken is not-executed with that attempt (command, exit, stderr tail, seconds) measured.
    """

    name: str = "libvirt_guest_oq"
    description: str = (
        "OQ on a throwaway guest: live migration with heartbeat interruption, backup and "
        "restore with a marker read back through the guest agent, clone from the template, "
        "power cycle, snapshot round trip with memory, maintenance round trip"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "test" not in params:
            return f"{self.name}: parameter test is required"
        problem = _unknown_params(self.name, params, {"test", "field", "load_mib"}) or _one_of(
            self.name, "test", params["test"], tuple(GUEST_OQ_TESTS)
        )
        load = params.get("load_mib", 0)
        if not problem and (
            params["test"] != "migrate"
            and "load_mib" in params
            or isinstance(load, bool)
            or not isinstance(load, int)
            or not 0 <= load <= 1024
        ):
            problem = f"{self.name}: load_mib is 0-1024 MiB and only for test migrate"
        if problem or "field" not in params:
            return problem
        return _one_of(self.name, "field", params["field"], GUEST_OQ_FIELDS[params["test"]])

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        # Every field of one test shares one run on one throwaway guest.
        # load_mib is part of the request: tests asking for the same load share one run.
        args = {"load_mib": params["load_mib"]} if params.get("load_mib") else {}
        return ProbeRequest("libvirt", GUEST_OQ_TESTS[params["test"]], args)

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        field = params.get("field", "verdict")
        measured = guest_oq_measured(value, params["test"])
        if params["test"] in CYCLE_TESTS:
            part = value[params["test"]]
            if part["verdict"] == "not-executed":
                raise StepNotExecuted(
                    part.get("reason") or f"{params['test']} was not executed", measured
                )
            if field != "verdict" and part["verdict"] != "pass":
                raise StepNotExecuted(
                    f"no {field}: the {params['test']} part did not pass ({part.get('reason')})",
                    measured,
                )
            return Observed(part[field], part.get("reason"), measured)
        if params["test"] == "failover":
            # Judged again from the values the record carries, not from the probe's word.
            verdict, reason = judge_failover(value)
            value = {**value, "verdict": verdict, "reason": reason}
            if verdict == "not-executed":
                # The failed attempt (command, exit, stderr tail, seconds) is in ``measured``.
                raise StepNotExecuted(reason or "failover was not executed", measured)
        if field == "verdict":
            return Observed(value["verdict"], value.get("reason"), measured)
        if value["verdict"] != "pass":
            raise StepNotExecuted(
                f"no {field}: the {params['test']} run did not pass ({value.get('reason')})",
                measured,
            )
        return Observed(value[field], value.get("reason"), measured)


#: Keys of a guest OQ run's value that are its verdict, not what the verdict rests on.
_NOT_MEASURED = frozenset({"verdict", "reason", *CYCLE_TESTS})


def guest_oq_measured(value: Mapping[str, Any], test: str) -> dict[str, Any]:
    """What a guest OQ test's figure rests on, for its own record: the run's measured values
    (interruption parts, migration time, agent waits, markers, boot ids), where it ran, and
    the cleanup; for a part of the guest cycle, that part's values."""
    measured = {k: v for k, v in value.items() if k not in _NOT_MEASURED}
    if test in CYCLE_TESTS:
        part = value.get(test) or {}
        measured.update({k: v for k, v in part.items() if k not in ("verdict", "reason")})
    return measured


for _check in (
    HypervisorVersion(),
    LibvirtNodeinfo(),
    LibvirtCapability(),
    LibvirtOq(),
    LibvirtGuestOq(),
):
    register(_check)
