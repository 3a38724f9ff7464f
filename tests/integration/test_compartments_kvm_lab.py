"""Fire compartments on the lab's two KVM hosts (URS-CL-02), read-only: nothing is migrated,
stopped or patched, so it runs beside the other KVM lab tests.

- An inventory with both hosts in one compartment fails CL-02 (IQ-KVM-PLC-003) naming both,
  and the HA pair clone1/clone2 then shares a compartment (IQ-KVM-PLC-004).
- With the lab's own compartments (kvm1 in lab/FC-1, kvm2 in lab/FC-2) each compartment has
  one host, so neither clone can move without joining its mate's compartment: `vqual patch
  --plan` refuses the plan naming the pair, the hosts and the compartments, and plans both
  clones stopped once the change approves stopping them.

The non-lab parts (inventory rewriting, the change, what the planner and the check decide on
the lab's shape) are tested without the lab in test_compartments_kvm_parts.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from vqual_lab import manager

from tests.conftest import COLLECTION, run_vqual
from tests.integration.compartments_kvm import (
    PAIR,
    placed_inventory,
    refusal_start,
    write_change,
    write_inventory,
)

pytestmark = pytest.mark.lab

SPEC = COLLECTION / "specs" / "kvm-cluster.yaml"


@pytest.fixture(scope="module")
def lab_inventory(lab: object) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(
        (manager.inventory_dir(manager.context()) / "hosts.yml").read_text())
    return doc


def _results(bundle: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            out[(record["data"]["target"], record["data"]["test_id"])] = record["data"]
    return out


def test_both_kvm_hosts_in_one_compartment_fail_cl02_naming_both(
        lab_inventory: dict[str, Any], executor_state: Path, tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path, placed_inventory(lab_inventory, {"kvm1": "FC-1", "kvm2": "FC-1"}))
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", "CHG0018101",
                     "--test", "IQ-KVM-PLC-003", "--test", "IQ-KVM-PLC-004", "--limit", "kvm_hosts",
                     "--evidence-dir", str(tmp_path / "evidence"), "--json",
                     state_dir=executor_state)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    results = _results(Path(summary["bundle"]))
    for host in ("kvm1", "kvm2"):
        spread = results[(host, "IQ-KVM-PLC-003")]
        assert spread["verdict"] == "fail"
        assert "spans 1 fire compartment(s) (lab/FC-1: kvm1, kvm2)" in spread["reason"]
        pair = results[(host, "IQ-KVM-PLC-004")]
        assert pair["verdict"] == "fail"
        assert "clone1 (kvm1) and clone2 (kvm2) share fire compartment lab/FC-1" in pair["reason"]


def test_planner_refuses_to_put_the_pair_in_one_compartment(
        lab_inventory: dict[str, Any], executor_state: Path, tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path, placed_inventory(lab_inventory, {"kvm1": "FC-1", "kvm2": "FC-2"}))
    change = write_change(tmp_path, "CHG0018102")
    done = run_vqual("patch", "-i", str(inventory), "--change", str(change), "--plan", "--json",
                     state_dir=executor_state)
    assert done.returncode == 1, done.stdout + done.stderr
    plan = json.loads(done.stdout)
    assert not plan["feasible"]
    for vm in PAIR:
        assert any(p.startswith(refusal_start(vm)) for p in plan["problems"]), plan["problems"]
    blocked = {h["host"]: h["blocked"] for h in plan["order"]}
    assert blocked == {"kvm1": ["clone1"], "kvm2": ["clone2"]}


def test_planner_stops_the_pair_when_the_change_approves_it(
        lab_inventory: dict[str, Any], executor_state: Path, tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path, placed_inventory(lab_inventory, {"kvm1": "FC-1", "kvm2": "FC-2"}))
    change = write_change(tmp_path, "CHG0018103", stop=PAIR)
    done = run_vqual("patch", "-i", str(inventory), "--change", str(change), "--plan", "--json",
                     state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = json.loads(done.stdout)
    assert {h["host"]: h["stops"] for h in plan["order"]} == {"kvm1": ["clone1"],
                                                              "kvm2": ["clone2"]}
    assert all(not h["moves"] for h in plan["order"])


def test_planner_refuses_a_pair_already_in_one_compartment(
        lab_inventory: dict[str, Any], executor_state: Path, tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path, placed_inventory(lab_inventory, {"kvm1": "FC-1", "kvm2": "FC-1"}))
    change = write_change(tmp_path, "CHG0018106", stop=PAIR)
    done = run_vqual("patch", "-i", str(inventory), "--change", str(change), "--plan", "--json",
                     state_dir=executor_state)
    assert done.returncode == 1, done.stdout + done.stderr
    problems = json.loads(done.stdout)["problems"]
    assert any("clone1 and clone2 already share fire compartment lab/FC-1" in p
               for p in problems), problems
