"""`vqual qualify` against the lab's KVM hosts over SSH: real hosts, real findings."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual

pytestmark = pytest.mark.lab

LAB_INV = REPO / "inventories" / "lab"


def _records(bundle: Path) -> list[dict]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


@pytest.fixture
def site_inventory(tmp_path: Path, lab: object) -> Path:
    """The lab inventory plus the site's committed expectations for its Debian 12 KVM hosts.

    The expected values are the same approved baseline the embedded default commits for a
    Debian 12 virtualization host; they are not read from the lab hosts.
    """
    inv = tmp_path / "inventory"
    shutil.copytree(LAB_INV, inv)
    baseline = yaml.safe_load((REPO / "inventories" / "local" / "host_vars" / "localhost.yml").read_text())
    (inv / "group_vars" / "kvm_hosts.yml").write_text(yaml.safe_dump({
        "vqual_expected": baseline["vqual_expected"],
        "vqual_applications": [{"name": "LIMS", "risk": "high", "vm": "clone1"}],
    }))
    return inv


@pytest.fixture
def varied_kvm2() -> Iterator[None]:
    from vqual_lab import manager

    manager.apply_variation("kvm2:loose-mode")
    manager.apply_variation("kvm2:pkg-version")
    try:
        yield
    finally:
        manager.reset("kvm2")


def _small_spec(tmp_path: Path) -> Path:
    tests = [
        {"id": "IQ-LAB-001", "title": "sshd_config is not writable by group or others",
         "protocol": "IQ", "requirements": ["URS-SEC-01"], "applies_to": ["kvm_host"],
         "risk": ["high", "medium", "low"], "check": "file_mode",
         "params": {"path": "/etc/ssh/sshd_config"},
         "expect": {"op": "regex", "value": "0[0-7][0-5][0-5]"}, "acceptance": "no group/other write"},
        {"id": "IQ-LAB-002", "title": "The lab agent package is the same version on every host",
         "protocol": "IQ", "requirements": ["URS-CL-01"], "applies_to": ["kvm_host"],
         "risk": ["high", "medium", "low"], "check": "package_version",
         "params": {"name": "vqual-lab-agent"},
         "expect": {"op": "same_across_hosts", "group": "cluster"}, "acceptance": "identical"},
        {"id": "IQ-LAB-003", "title": "Each host reports its own hostname", "protocol": "IQ",
         "requirements": ["URS-HV-02"], "applies_to": ["kvm_host"], "risk": ["high", "medium", "low"],
         "check": "file_content", "params": {"path": "/etc/hostname", "regex": "^kvm[12]$",
                                             "result": "found"},
         "expect": {"op": "equals", "value": True}, "acceptance": "kvm1 or kvm2"},
    ]
    path = tmp_path / "lab-small.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "lab-small", "title": "lab findings", "version": "1.0"},
        "requirements": ["URS-SEC-01", "URS-CL-01", "URS-HV-02"], "tests": tests}))
    return path


def test_linux_host_spec_over_ssh_on_both_kvm_hosts(executor_state: Path, site_inventory: Path,
                                                   tmp_path: Path) -> None:
    done = run_vqual("qualify", "-i", str(site_inventory), "-s", str(COLLECTION / "specs" / "linux-virt-host.yaml"),
                     "-c", "CHG0000301", "--limit", "kvm_hosts", "--evidence-dir", str(tmp_path / "ev"),
                     "--json", state_dir=executor_state)
    assert done.returncode in (0, 1, 3, 4), done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    assert summary["unreachable"] == []
    results = [r["data"] for r in _records(Path(summary["bundle"])) if r["kind"] == "check.result"]
    assert {r["target"] for r in results} == {"kvm1", "kvm2"}
    # Observed over SSH on each host: a probe error would be 'error' on every test.
    by = {(r["target"], r["test_id"]): r for r in results}
    assert by[("kvm1", "IQ-OS-001")]["verdict"] == "pass"
    assert by[("kvm2", "IQ-OS-001")]["verdict"] == "pass"


def test_lab_variation_is_found_and_named(executor_state: Path, site_inventory: Path,
                                          tmp_path: Path, varied_kvm2: None) -> None:
    done = run_vqual("qualify", "-i", str(site_inventory), "-s", str(_small_spec(tmp_path)),
                     "-c", "CHG0000302", "--limit", "kvm_hosts", "--evidence-dir", str(tmp_path / "ev"),
                     "--json", state_dir=executor_state)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    results = {(r["data"]["target"], r["data"]["test_id"]): r["data"]
               for r in _records(Path(summary["bundle"])) if r["kind"] == "check.result"}
    assert results[("kvm1", "IQ-LAB-001")]["verdict"] == "pass"
    loose = results[("kvm2", "IQ-LAB-001")]
    assert loose["verdict"] == "fail" and loose["observed"] == "0666"
    agent = results[("kvm2", "IQ-LAB-002")]
    assert agent["verdict"] in ("fail",)
    # A two-host cluster has no majority: both hosts fail and each reason names both values.
    assert "0.9" in agent["reason"] and "1.0" in agent["reason"]
    assert results[("kvm1", "IQ-LAB-003")]["verdict"] == "pass"
    verify = run_vqual("verify", summary["bundle"], state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout


def test_the_whole_lab_inventory_is_a_valid_vqual_inventory(site_inventory: Path) -> None:
    # Every component's hosts must use target kinds and variables the planner accepts,
    # or any qualification over the lab inventory stops at planning.
    from tests.inventory_testlib import model_of

    model = model_of(site_inventory)
    assert {"kvm1", "kvm2", "clone1", "clone2", "vcsim-vc", "vcsim-esx", "winrm-hv1"} <= set(model.hosts)
