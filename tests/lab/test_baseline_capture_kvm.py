"""`vqual baseline capture` on a lab KVM host (kvm1): its observed values become a draft
expected-values file; an unapproved draft is refused, and once another approver approves the
protocol with it, kvm1 passes its own IQ against it."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_vqual
from tests.integration.reviewflow import add_person, executor, vqual_with_passphrase

pytestmark = pytest.mark.lab

LAB_INV = REPO / "inventories" / "lab"


def _test(test_id: str, kinds: list[str], check: str, params: dict[str, Any],
          expect: dict[str, Any]) -> dict[str, Any]:
    return {"id": test_id, "title": f"{check} {params}", "protocol": "IQ",
            "requirements": ["URS-HV-02"], "applies_to": kinds,
            "risk": ["high", "medium", "low"], "check": check, "params": params,
            "expect": expect, "acceptance": "as the reference host"}


HOST, HV = ["linux_host"], ["libvirt_hypervisor"]
TESTS = [
    _test("IQ-KB-001", HOST, "os_release", {"field": "VERSION_ID"},
          {"op": "equals", "value_from": "os_version_id"}),
    _test("IQ-KB-002", HOST, "kernel_release", {}, {"op": "regex", "value_from": "kernel"}),
    _test("IQ-KB-003", HOST, "package_version", {"name": "libvirt-daemon-system"},
          {"op": "equals", "value_from": "packages.libvirt"}),
    _test("IQ-KB-004", HV, "hypervisor_version", {"field": "libvirt_version"},
          {"op": "version", "cmp": ">=", "scheme": "pep440", "value_from": "libvirt_min_version"}),
    _test("IQ-KB-005", HV, "libvirt_nodeinfo", {"field": "cpus"},
          {"op": "equals", "value_from": "nodeinfo.cpus"}),
]


def _spec(folder: Path, baseline: str | None = None) -> Path:
    spec = {
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "kvm-baseline", "title": "A KVM host against its baseline",
                     "version": "1.0"},
        "requirements": ["URS-HV-02"],
        **({"data_files": {"baseline": baseline}, "expected_values": "baseline"} if baseline else {}),
        "tests": TESTS,
    }
    path = folder / "kvm-baseline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _results(bundle: Path) -> dict[str, dict[str, Any]]:
    records = [json.loads(base64.b64decode(json.loads(line)["payload"]))
               for line in (bundle / "records.jsonl").read_text().splitlines()]
    return {r["data"]["test_id"]: r["data"] for r in records if r["kind"] == "check.result"}


def test_a_captured_kvm_baseline_is_refused_as_a_draft_and_passes_once_approved(
    lab: object, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    executor(state)
    approver = add_person(state, "Ada Approver", "ada@example.com", "approver")
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB_INV, inventory)
    output = tmp_path / "kvm1-baseline.yaml"
    done = run_vqual("baseline", "capture", "-i", str(inventory), "--limit", "kvm1",
                     "-s", str(_spec(tmp_path)), "-o", str(output), "-c", "CHG0008951",
                     "--evidence-dir", str(tmp_path / "ev"), "--initiator", "carol@example.com",
                     "--json", state_dir=state, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["captured"] == [
        "kernel", "libvirt_min_version", "nodeinfo.cpus", "os_version_id", "packages.libvirt"
    ]
    doc = yaml.safe_load(output.read_text())
    assert (doc["status"], doc["captured"]["host"]) == ("draft", "kvm1")

    spec = _spec(tmp_path, output.name)
    qualify = ("qualify", "-i", str(inventory), "-s", str(spec), "--limit", "kvm1",
               "--evidence-dir", str(tmp_path / "ev"), "--json")
    refused = run_vqual(*qualify, "-c", "CHG0008952", state_dir=state, timeout=900)
    assert refused.returncode == 2 and "is a draft" in refused.stderr, refused.stderr

    approved = vqual_with_passphrase("sign", str(spec), "--meaning", "approved", "--key",
                                     str(approver), state_dir=state)
    assert approved.returncode == 0, approved.stderr
    done = run_vqual(*qualify, "-c", "CHG0008953", state_dir=state, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    results = _results(Path(json.loads(done.stdout)["bundle"]))
    assert {t: r["verdict"] for t, r in results.items()} == {t["id"]: "pass" for t in TESTS}
