"""Helpers of the fire-compartment tests on the lab's two KVM hosts (URS-CL-02), kept apart
from the lab so that tests/integration/test_compartments_kvm_parts.py runs them without it.

The lab puts kvm1 in lab/FC-1 and kvm2 in lab/FC-2 and runs clone1 on kvm1, clone2 on kvm2;
these helpers declare the clones an HA pair and move hosts between compartments in a copy of
the lab's inventory, and write the shipped lab change with its own id and stop approvals.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import COLLECTION

CLUSTER = "lab-kvm"
PAIR = ("clone1", "clone2")
HOME = {"clone1": "kvm1", "clone2": "kvm2"}  # where lab up puts the clones
LAB_CHANGE = COLLECTION / "specs" / "changes" / "lab-kvm-agent-1.1.yaml"


def placed_inventory(inventory: Mapping[str, Any], compartments: Mapping[str, str]
                     ) -> dict[str, Any]:
    """A copy of the lab's inventory document with the KVM hosts in ``compartments`` (host ->
    compartment), the clones declared an HA pair and placed on their hosts (``vqual_vms``)."""
    doc = copy.deepcopy(dict(inventory))
    group = doc["all"]["children"]["kvm_hosts"]
    for host, compartment in compartments.items():
        group["hosts"][host]["vqual_fire_compartment"] = compartment
    for vm, host in HOME.items():
        group["hosts"][host]["vqual_vms"] = [vm]
    group["vars"]["vqual_anti_affinity"] = [list(PAIR)]
    return doc


def write_inventory(tmp: Path, doc: Mapping[str, Any]) -> Path:
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump(dict(doc), sort_keys=False))
    return path


def write_change(tmp: Path, change_id: str, *, stop: Iterable[str] = ()) -> Path:
    """The shipped lab change with its own id, an open window, its spec path made absolute,
    and ``stop`` approved to stop (10 minutes each)."""
    doc = yaml.safe_load(LAB_CHANGE.read_text())
    doc["change_id"] = change_id
    doc["window"] = {"start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}
    doc["requalify"]["spec"] = str(COLLECTION / "specs" / "kvm-cluster.yaml")
    doc["stop_approved"] = [{"vm": vm, "max_downtime_s": 600} for vm in stop]
    path = tmp / f"{change_id}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def refusal_start(vm: str) -> str:
    """How the planner's refusal for ``vm`` begins with kvm1 in lab/FC-1, kvm2 in lab/FC-2:
    the pair, the hosts, the compartments, then the VM and why."""
    own = "lab/FC-1" if HOME[vm] == "kvm1" else "lab/FC-2"
    return (
        "anti-affinity group clone1, clone2 (hosts kvm1, kvm2; fire compartments lab/FC-1, "
        f"lab/FC-2): vm {vm} on host {HOME[vm]} is blocking: no other host of its fire "
        f"compartment {own} is in service"
    )
