"""Placement (URS-RISK-02, URS-CL-02) end to end: `vqual qualify` with the shipped kvm-cluster
spec's placement tests on two hosts of libvirt's test driver (test:///default), decided on
the inventory the run records; the report shows the mixing decision."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import COLLECTION, run_vqual

SPEC = COLLECTION / "specs" / "kvm-cluster.yaml"
PLACEMENT = ("IQ-KVM-PLC-001", "IQ-KVM-PLC-002", "IQ-KVM-PLC-003", "IQ-KVM-PLC-004")


def _inventory(tmp_path: Path, compartments: dict[str, str], mixing: dict[str, Any]) -> Path:
    hosts = {
        name: {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "vqual_libvirt_uri": "test:///default",
            "vqual_site": "DC1",
            "vqual_fire_compartment": compartment,
            "vqual_vms": [f"vm-{name}"],
        }
        for name, compartment in compartments.items()
    }
    hosts["kvm-a"]["vqual_applications"] = [{"name": "LIMS", "risk": "high", "vm": "vm-kvm-a"}]
    hosts["kvm-b"]["vqual_applications"] = [
        {"name": "wiki", "risk": "low", "validated": False, "vm": "vm-kvm-b"}
    ]
    group_vars = {
        "vqual_target_kinds": ["kvm_host", "libvirt_hypervisor"],
        "vqual_cluster": "pcs",
        "vqual_mixing": mixing,
        "vqual_anti_affinity": [["vm-kvm-a", "vm-kvm-b"]],
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(
        {"all": {"children": {"kvm_hosts": {"hosts": hosts, "vars": group_vars}}}}
    ))
    return path


def _results(bundle: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            out[(record["data"]["target"], record["data"]["test_id"])] = record["data"]
    return out


def _qualify(state: Path, tmp_path: Path, inventory: Path, change: str) -> tuple[int, Path]:
    tests = [arg for test in PLACEMENT for arg in ("--test", test)]
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", change, *tests,
                     "--evidence-dir", str(tmp_path / "evidence"), "--json", state_dir=state)
    assert done.stdout, done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    return done.returncode, Path(summary["bundle"])


def test_one_compartment_and_forbidden_mixing_fail_naming_hosts_and_the_decision(
    executor_state: Path, tmp_path: Path
) -> None:
    inventory = _inventory(tmp_path, {"kvm-a": "FC-1", "kvm-b": "FC-1"},
                           {"allowed": False, "reference": "QA-DEC-12"})
    code, bundle = _qualify(executor_state, tmp_path, inventory, "CHG0000801")
    assert code == 1
    results = _results(bundle)
    assert {test for _, test in results} == set(PLACEMENT)
    decision = results[("kvm-a", "IQ-KVM-PLC-001")]
    assert (decision["verdict"], decision["observed"]) == ("pass", "not allowed")
    mixing = results[("kvm-b", "IQ-KVM-PLC-002")]
    assert mixing["verdict"] == "fail"
    assert "unvalidated wiki (kvm-b/vm-kvm-b)" in mixing["reason"]
    assert "does not allow mixing (QA-DEC-12)" in mixing["reason"]
    spread = results[("kvm-a", "IQ-KVM-PLC-003")]
    assert spread["verdict"] == "fail"
    assert "spans 1 fire compartment(s) (DC1/FC-1: kvm-a, kvm-b)" in spread["reason"]
    pair = results[("kvm-a", "IQ-KVM-PLC-004")]
    assert pair["verdict"] == "fail" and "share fire compartment DC1/FC-1" in pair["reason"]
    report = (bundle / "report.html").read_text()
    assert "not allowed" in report and "QA-DEC-12" in report


def test_two_compartments_and_allowed_mixing_pass(executor_state: Path, tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, {"kvm-a": "FC-1", "kvm-b": "FC-2"},
                           {"allowed": True, "reference": "QA-DEC-13"})
    code, bundle = _qualify(executor_state, tmp_path, inventory, "CHG0000802")
    results = _results(bundle)
    assert code == 0, {k: (r["verdict"], r["reason"]) for k, r in results.items()}
    assert results[("kvm-b", "IQ-KVM-PLC-001")]["observed"] == "allowed"
    assert results[("kvm-a", "IQ-KVM-PLC-002")]["measured"]["decision"] == "allowed"
