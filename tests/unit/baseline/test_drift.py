"""Drift logic without a run: the derived spec and the results recorded per target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification.baseline import make_fingerprint
from qualification.baseline.drift import Baseline, compare_target, drift_spec
from qualification.errors import EvidenceInvalidError
from qualification.execution.drift import DriftSummary


def _fp(subject: str, packages: dict[str, str], hostname: str) -> Any:
    guest = {"packages": packages, "users": [{"name": "root", "uid": 0}], "files": {}}
    return make_fingerprint(subject, "vm", vm={"vcpus": 1, "memory_mib": 384}, guest=guest,
                            identity={"hostname": hostname})


SPEC = {
    "apiVersion": "vqual/v1",
    "kind": "Protocol",
    "metadata": {"name": "master-vm", "title": "t", "version": "1.0"},
    "requirements": ["URS-MVM-01"],
    "tests": [
        {"id": "IQ-FP-001", "check": "host_fingerprint", "applies_to": ["master_vm"],
         "risk": ["high"], "params": {"files": ["/etc/issue"]}},
        {"id": "IQ-GEN-001", "check": "template_fingerprint", "applies_to": ["master_vm"],
         "risk": ["high"]},
        {"id": "IQ-OS-001", "check": "os_release", "applies_to": ["linux_host"], "risk": ["high"]},
        {"id": "IQ-OS-002", "check": "os_release", "applies_to": ["linux_host"], "risk": ["high"]},
    ],
}


def _baseline(fingerprints: dict[str, Any], results: dict[tuple[str, str], Any]) -> Baseline:
    return Baseline(
        path=Path("/evidence/CHG0000001/run"), seal="s" * 64, change_id="CHG0000001",
        run_id="run", spec_text=yaml.safe_dump(SPEC).encode(), data_files={},
        fingerprints=fingerprints, results=results,
    )


def _result(test_id: str, target: str, verdict: str, observed: Any, check: str) -> dict[str, Any]:
    return {"test_id": test_id, "target": target, "verdict": verdict, "observed": observed,
            "check": check, "reason": None, "expected": {"op": "equals", "value": "debian"},
            "title": test_id, "protocol": "IQ", "requirements": ["URS-MVM-01"],
            "method": "m", "raw": None, "started": "t", "finished": "t", "duration_ms": 1.0}


def test_drift_spec_collects_fingerprints_everywhere_and_reruns_the_rest() -> None:
    base = _baseline({"master": _fp("master", {"a": "1"}, "m")},
                     {("IQ-OS-001", "kvm1"): {"verdict": "pass"},
                      ("IQ-FP-001", "master"): {"verdict": "pass"}})
    spec = drift_spec(base)
    ids = [t["id"] for t in spec["tests"]]
    # The template test reads an image, not a live target; IQ-OS-002 never ran in the baseline.
    assert ids == ["IQ-FP-001", "IQ-OS-001"]
    fp_test = spec["tests"][0]
    assert "clone" in fp_test["applies_to"] and fp_test["scope"] == ["master", "clone"]
    # A master's baseline applies to masters and clones, not to hosts.
    master = Baseline(**{**base.__dict__, "kinds": frozenset({"master_vm"})})
    assert drift_spec(master)["tests"][0]["applies_to"] == ["master_vm", "clone"]
    assert fp_test["params"] == {"files": ["/etc/issue"]}
    assert spec["metadata"]["name"] == "drift-master-vm"
    assert "s" * 64 in spec["metadata"]["description"]
    with pytest.raises(EvidenceInvalidError, match="no fingerprint and no check result"):
        drift_spec(_baseline({}, {}))


def test_each_difference_is_one_failed_result_and_identity_is_not_one() -> None:
    base = _baseline({"master": _fp("master", {"a": "1", "b": "1"}, "master")}, {})
    tests = [{"test_id": "IQ-FP-001", "check": "host_fingerprint"}]
    live = _fp("clone1", {"a": "2", "b": "1", "c": "1"}, "clone1")
    results = [_result("IQ-FP-001", "clone1", "pass", {}, "host_fingerprint")]
    out, diffs = compare_target(base, "clone1", tests, results, live)
    assert [(d.what, d.where) for d in diffs] == [("package", "a"), ("package", "c")]
    assert [r["test_id"] for r in out] == [
        "IQ-FP-001", "IQ-FP-001:package:a", "IQ-FP-001:package:c"
    ]
    assert [r["verdict"] for r in out] == ["fail", "fail", "fail"]
    assert out[1]["expected"] == {"op": "equals", "value": "1"} and out[1]["observed"] == "2"
    assert out[0]["observed"]["differences"] == 2
    # Same packages: pass, although hostname and subject differ.
    same = _fp("clone1", {"a": "1", "b": "1"}, "clone1")
    out, diffs = compare_target(base, "clone1", tests, results, same)
    assert diffs == [] and [r["verdict"] for r in out] == ["pass"]


def test_missing_fingerprints_are_errors_naming_what_is_missing() -> None:
    two = _baseline({"a": _fp("a", {}, "a"), "b": _fp("b", {}, "b")}, {})
    tests = [{"test_id": "IQ-FP-001", "check": "host_fingerprint"}]
    results = [_result("IQ-FP-001", "c", "pass", {}, "host_fingerprint")]
    out, _ = compare_target(two, "c", tests, results, _fp("c", {}, "c"))
    assert out[0]["verdict"] == "error" and "no fingerprint of c (it has: a, b)" in out[0]["reason"]
    out, _ = compare_target(two, "a", tests, results, None)
    assert out[0]["verdict"] == "error"


def test_rerun_check_results_are_compared_with_the_baseline() -> None:
    base = _baseline({}, {
        ("IQ-OS-001", "kvm1"): {"verdict": "pass", "observed": "debian"},
        ("IQ-OS-002", "kvm1"): {"verdict": "fail", "observed": "11"},
    })
    tests = [{"test_id": "IQ-OS-001", "check": "os_release"},
             {"test_id": "IQ-OS-002", "check": "os_release"}]
    results = [_result("IQ-OS-001", "kvm1", "fail", "ubuntu", "os_release"),
               _result("IQ-OS-002", "kvm1", "fail", "11", "os_release")]
    out, diffs = compare_target(base, "kvm1", tests, results, None)
    assert [(d.what, d.where) for d in diffs] == [("check", "IQ-OS-001")]
    assert [r["verdict"] for r in out] == ["fail", "pass"]  # failing as before is not drift
    assert "ubuntu" in out[0]["reason"]


def test_the_guest_fingerprint_test_carries_the_comparison() -> None:
    base = _baseline({"master": _fp("master", {"a": "1"}, "master")}, {})
    tests = [{"test_id": "IQ-VM-001", "check": "vm_fingerprint"},
             {"test_id": "IQ-FP-001", "check": "host_fingerprint"}]
    results = [_result("IQ-VM-001", "clone1", "pass", 1, "vm_fingerprint"),
               _result("IQ-FP-001", "clone1", "pass", {}, "host_fingerprint")]
    out, diffs = compare_target(base, "clone1", tests, results, _fp("clone1", {"a": "2"}, "c"))
    assert len(diffs) == 1
    assert [(r["test_id"], r["verdict"]) for r in out] == [
        ("IQ-VM-001", "pass"), ("IQ-FP-001", "fail"), ("IQ-FP-001:package:a", "fail")
    ]
    assert "IQ-FP-001" in out[0]["reason"]


def _summary(verdict: str, exit_code: int, **kw: Any) -> DriftSummary:
    return DriftSummary(baseline=Path("/evidence/CHG0000001/run"), baseline_seal="s" * 64,
                        change_id="CHG0000002", run_id="R1", bundle=Path("/evidence/b"),
                        verdict=verdict, verification="valid", exit_code=exit_code, **kw)


def test_the_summary_line_shows_the_drift_bundles_verdict() -> None:
    clean = _summary("pass", 0).to_text().splitlines()[0]
    assert clean == "vqual drift: CHG0000002 run R1: PASS: no drift from /evidence/CHG0000001/run " \
        "(seal ssssssssssssssss)"
    # Nothing differed, but a test could not be performed: not "no drift", and it says so.
    partial = _summary("not-executed", 3, errors=["h1: IQ-OS-002: not supported"]).to_text()
    assert partial.splitlines()[0].startswith(
        "vqual drift: CHG0000002 run R1: NOT-EXECUTED: no difference found, 1 not observed, from")
    assert "no drift" not in partial
    drifted = _summary("fail", 1, differences=[{"reason": "h1: packages.bash differs"}])
    assert drifted.to_text().splitlines()[0].startswith(
        "vqual drift: CHG0000002 run R1: FAIL: 1 difference(s) from")
