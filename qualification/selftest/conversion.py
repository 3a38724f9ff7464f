"""OQ self checks of conversion and decommissioning (URS-CONV-01, URS-DECOM-01):
a conversion comparison names a changed application data file (VQ-71) and allows the new
platform's hardware; a decommissioning is refused while a dependent is declared (VQ-73)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qualification.baseline.conversion import ConversionRules, judge
from qualification.baseline.decommission import decommission_block
from qualification.checks.fingerprint_model import make_fingerprint
from qualification.errors import BadInputError
from qualification.selftest.base import Outcome, SelfCheck

_RULES = {"identity": ["name", "uuid", "macs"],
          "allowed": [{"what": "vm.disk", "fields": ["format", "bus", "dev"]}]}


def _fp(name: str, disk: dict[str, Any], orders: str) -> Any:
    return make_fingerprint(
        name, "vm",
        vm={"vcpus": 1, "memory_mib": 512, "disks": [disk], "nics": [], "devices": []},
        guest={"packages": {"bash": "5.2"},
               "data": {"/srv/app/orders.dat": {"type": "file", "sha256": orders},
                        "/srv/app/app.conf": {"type": "file", "sha256": "c" * 64}}},
        identity={"name": name},
    )


_WANT_CONVERSION = [["data", "/srv/app/orders.dat", False, "changed"],
                    ["vm.disk", "vda", True, ""]]


def conversion_names_changed_data() -> Outcome:
    source = _fp("src", {"target": "vda", "device": "disk", "bus": "virtio", "format": "qcow2"},
                 "a" * 64)
    target = _fp("dst", {"target": "sda", "device": "disk", "bus": "sata", "format": "raw"},
                 "b" * 64)
    got = [[j.difference.what, j.difference.where, j.allowed, j.difference.detail]
           for j in judge(source, target, ConversionRules.from_json(_RULES))]
    ok = got == _WANT_CONVERSION
    return Outcome(ok, got, None if ok else f"expected {_WANT_CONVERSION}")


def decommission_refuses_a_dependent() -> Outcome:
    hostvars = {"app-vm": {"vqual_backup_store": "/nonexistent"},
                "web": {"vqual_depends_on": ["app-vm"]}}
    try:
        decommission_block(["app-vm"], hostvars, Path("/nonexistent"), None)  # type: ignore[arg-type]
    except BadInputError as exc:
        line = exc.one_line()
        ok = "web depend(s) on it" in line
        return Outcome(ok, line, None if ok else "the refusal does not name the dependent")
    return Outcome(False, "not refused", "a decommissioning with a declared dependent was not refused")


def conversion_checks() -> list[SelfCheck]:
    """OQ: conversion by difference and the decommissioning refusal."""
    return [
        SelfCheck(
            "ST-OQ-30",
            "a conversion comparison names a changed data file and allows the declared "
            "hardware difference",
            "OQ", "VQ-71", "qualification.baseline.conversion.judge",
            {"op": "equals", "value": _WANT_CONVERSION}, conversion_names_changed_data,
        ),
        SelfCheck(
            "ST-OQ-31",
            "a decommissioning is refused while a dependent is declared, naming it",
            "OQ", "VQ-73", "qualification.baseline.decommission.decommission_block",
            {"op": "contains", "value": "web depend(s) on it"}, decommission_refuses_a_dependent,
        ),
    ]
