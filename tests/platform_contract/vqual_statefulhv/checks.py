"""The check types of the ``statefulhv`` platform: their requests name its probe.

The plug-in hands them to the check library (its ``check_types`` hook, :data:`CHECKS`), so
the library takes them without naming this platform.

- ``statefulhv_about``: a field of ``GET /about`` (``product``, ``version``, ``api_version``);
- ``statefulhv_host``: a field of one host (``in_maintenance``, ``cluster``, ``memory_mib``, ...);
- ``statefulhv_vm``: a field of one VM (``host``, ``power_state``, ``vcpus``, ...);
- ``statefulhv_snapshots``: a VM's snapshot names (the service has none: ``not-executed``);
- ``statefulhv_oq``: the verdict of an OQ scenario (``maintenance_round_trip``), with the
  steps it rests on as ``measured``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qualification.checks.base import (
    Check,
    Observed,
    ProbeRequest,
    StepNotExecuted,
    unknown_params,
)

PROBE = "statefulhv"
ABOUT_FIELDS = ("product", "version", "api_version", "platform")
HOST_FIELDS = ("in_maintenance", "cluster", "memory_mib", "cpu.count", "software.connected")
VM_FIELDS = ("host", "power_state", "vcpus", "memory_mib", "uuid")
SCENARIOS = ("maintenance_round_trip",)


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value[part]
    return value


def _field_problem(name: str, params: Mapping[str, Any], fields: tuple[str, ...],
                   named: str | None) -> str | None:
    allowed = {"field"} | ({named} if named else set())
    problem = unknown_params(name, params, allowed)
    if problem:
        return problem
    if named and (not isinstance(params.get(named), str) or not params.get(named)):
        return f"{name}: parameter {named} is required"
    if params.get("field") not in fields:
        return f"{name}: parameter field must be one of {', '.join(fields)}"
    return None


class AboutCheck:
    name = "statefulhv_about"
    description = "A field of what the service says it is (GET /about)."

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _field_problem(self.name, params, ABOUT_FIELDS, None)

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest(PROBE, "about")

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return value[params["field"]]


class HostCheck:
    name = "statefulhv_host"
    description = "A field of one host of the service (GET /hosts)."

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _field_problem(self.name, params, HOST_FIELDS, "host")

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest(PROBE, "hosts")

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return _at(value[params["host"]], params["field"])


class VmCheck:
    name = "statefulhv_vm"
    description = "A field of one VM of the service (GET /vms)."

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _field_problem(self.name, params, VM_FIELDS, "vm")

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest(PROBE, "vms")

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return _at(value[params["vm"]], params["field"])


class SnapshotsCheck:
    name = "statefulhv_snapshots"
    description = "The snapshot names of one VM."

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        problem = unknown_params(self.name, params, {"vm"})
        if problem is None and (not isinstance(params.get("vm"), str) or not params.get("vm")):
            return f"{self.name}: parameter vm is required"
        return problem

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest(PROBE, "snapshots", {"vm": params["vm"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return sorted(s["name"] for s in value)


class OqCheck:
    name = "statefulhv_oq"
    description = "The verdict of an OQ scenario on a throwaway clone (pass or fail)."

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        problem = unknown_params(self.name, params, {"scenario"})
        if problem is None and params.get("scenario") not in SCENARIOS:
            return f"{self.name}: parameter scenario must be one of {', '.join(SCENARIOS)}"
        return problem

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest(PROBE, str(params["scenario"]))

    def extract(self, value: Any, params: Mapping[str, Any]) -> Observed:
        steps = value["steps"]
        measured = {"vm": value["vm"], "steps": {n: {"verdict": s["verdict"],
                                                     "duration_ms": s["duration_ms"]}
                                                 for n, s in steps.items()}}
        if steps and all(s["verdict"] == "not-executed" for s in steps.values()):
            # The scenario's precondition did not hold: nothing ran, nothing to judge.
            raise StepNotExecuted(next(iter(steps.values()))["reason"], measured)
        failed = [f"{name}: {s['reason']}" for name, s in steps.items() if s["verdict"] != "pass"]
        return Observed("pass" if value["passed"] else "fail", "; ".join(failed) or None, measured)


CHECKS: tuple[Check, ...] = (AboutCheck(), HostCheck(), VmCheck(), SnapshotsCheck(), OqCheck())
