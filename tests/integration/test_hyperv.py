"""Hyper-V through the WinRM stand-in: `vqual qualify` with specs/hyperv-host.yaml.

No real Hyper-V host was available. The targets are the lab's WinRM stand-in
(``vqual_lab.winrm_standin``: canned answers in the shapes Microsoft documents, no
state changes), so these tests show that the adapter, the checks, the spec and the evidence
work end to end, and that nothing the stand-in cannot do is reported as done: OQ steps and
cmdlets it does not know are ``not-executed``, never ``pass``.

This module brings up its own three stand-ins (own lab directories, addresses 127.0.0.164-166)
instead of the whole lab, as one failover cluster ``HVC1``: ``hv-a`` as the lab's default,
``hv-b`` with another BIOS version (not on the example HCL), ``hv-c`` with a server model not
on the HCL. Marked ``lab``: they run with ``VQUAL_LAB=1``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vqual_lab.component import LabContext
from vqual_lab.winrm_standin import WinRMStandIn
from tests.conftest import COLLECTION, REPO, run_vqual

pytestmark = pytest.mark.lab

SPEC = COLLECTION / "specs" / "hyperv-host.yaml"


def _renamed(name: str) -> dict[str, Any]:
    return {"Get-VMHost": {"Name": name, "ComputerName": name}}


HOSTS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "hv-a": ("127.0.0.164", 25991, {**_renamed("HV1")}),
    "hv-b": (
        "127.0.0.165",
        25992,
        {**_renamed("HV2"), "Get-ComputerInfo": {"CsName": "HV2", "BiosSMBIOSBIOSVersion": "2.17.0"}},
    ),
    "hv-c": (
        "127.0.0.166",
        25993,
        {**_renamed("HV3"), "Get-ComputerInfo": {"CsName": "HV3", "CsModel": "PowerEdge R660"}},
    ),
}
EXPECTED = {
    "windows_product": "Windows Server 2019 Datacenter",
    "windows_build": "17763",
    "cumulative_update": "KB5005568",
    "numa_spanning": True,
    "migration_subnets": ["10.10.20.0/24"],
    "vswitch_types": {"vSwitch-Production": "External", "vSwitch-Management": "External"},
    "vswitch_management_os": {"vSwitch-Production": False, "vSwitch-Management": True},
    "hyperv_administrators": ["LAB\\hv-admins"],
    "cluster_network_roles": {"Cluster": 1, "Client": 3},
    "ntp_server": "ntp1.example.org,0x9",
}


@dataclasses.dataclass
class HypervLab:
    contexts: dict[str, tuple[LabContext, WinRMStandIn]]
    inventory: dict[str, Any]

    def password(self, host: str) -> str:
        ctx, comp = self.contexts[host]
        return comp.read_credentials(ctx)[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HypervLab]:
    """This module's own stand-ins (overrides the session lab: nothing else is needed)."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    contexts: dict[str, tuple[LabContext, WinRMStandIn]] = {}
    hosts: dict[str, Any] = {}
    try:
        for name, (address, port, overrides) in HOSTS.items():
            lab_dir = tmp_path_factory.mktemp(f"hyperv-{name}")
            ctx = LabContext(
                lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None
            )
            comp = WinRMStandIn(address, port, inventory_host=name, overrides=overrides)
            contexts[name] = (ctx, comp)
            status = comp.up(ctx)
            assert status.state == "running", status
            hosts.update(comp.inventory(ctx)["groups"]["hyperv_hosts"]["hosts"])
        group = {
            "hosts": hosts,
            "vars": {"vqual_risk": "high", "vqual_cluster": "HVC1", "vqual_expected": EXPECTED},
        }
        yield HypervLab(contexts, {"all": {"children": {"hyperv_hosts": group}}})
    finally:
        for ctx, comp in contexts.values():
            comp.down(ctx)


def _write_inventory(path: Path, inventory: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(inventory)), sort_keys=False))
    return path


def _records(bundle: Path) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in (bundle / "records.jsonl").read_text().splitlines()
    ]


def _results(bundle: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["data"]["target"], r["data"]["test_id"]): r["data"]
        for r in _records(bundle)
        if r["kind"] == "check.result"
    }


def _no_secret_under(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def qualified(
    lab: HypervLab, executor_state: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    """One run of specs/hyperv-host.yaml over the three stand-ins."""
    tmp = tmp_path_factory.mktemp("hyperv-run")
    inventory = _write_inventory(tmp / "hosts.yml", lab.inventory)
    done = run_vqual(
        "qualify", "-i", str(inventory), "-s", str(SPEC), "-c", "CHG0000551",
        "--evidence-dir", str(tmp / "evidence"), "--json", state_dir=executor_state,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # the variant hosts fail
    assert "Traceback" not in done.stderr
    for host in HOSTS:
        assert lab.password(host) not in done.stdout + done.stderr
    summary = json.loads(done.stdout)
    return summary, Path(summary["bundle"])


def test_qualify_writes_a_bundle_that_verifies(
    qualified: tuple[dict[str, Any], Path], executor_state: Path
) -> None:
    summary, bundle = qualified
    assert summary["verification"] == "valid"
    assert summary["executed"] == summary["planned"]
    assert summary["counts"]["error"] == 0
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    results = _results(bundle)
    assert {t for t, _ in results} == set(HOSTS)
    for test_id in ("IQ-HV-001", "IQ-HV-002", "IQ-HV-003", "IQ-HV-010", "IQ-HV-020",
                    "IQ-HV-030", "IQ-HV-032", "IQ-HV-041", "IQ-HV-042", "IQ-HV-050",
                    "IQ-HV-051", "IQ-HV-054", "IQ-HV-055"):  # fmt: skip
        assert results[("hv-a", test_id)]["verdict"] == "pass", results[("hv-a", test_id)]
    assert results[("hv-a", "IQ-HV-041")]["observed"] == "Kerberos"


def test_homogeneity_names_the_differing_host_and_both_values(
    qualified: tuple[dict[str, Any], Path],
) -> None:
    results = _results(qualified[1])
    bios = results[("hv-b", "IQ-HV-015")]
    assert bios["verdict"] == "fail"
    assert bios["reason"] == (
        'hv-b has "2.17.0", the majority of cluster (hv-a, hv-c) has "2.19.1"'
    )
    assert results[("hv-a", "IQ-HV-015")]["verdict"] == "pass"
    model = results[("hv-c", "IQ-HV-011")]
    assert model["verdict"] == "fail"
    assert model["reason"] == (
        'hv-c has "PowerEdge R660", the majority of cluster (hv-a, hv-b) has "PowerEdge R650"'
    )


def test_hcl_findings_name_the_host_and_its_hardware(
    qualified: tuple[dict[str, Any], Path],
) -> None:
    results = _results(qualified[1])
    assert results[("hv-a", "IQ-HV-010")]["observed"] == []
    assert results[("hv-b", "IQ-HV-010")]["observed"] == [
        "HV2: Dell Inc. PowerEdge R650 BIOS '2.17.0' is not on the HCL (listed: 2.19.1)"
    ]
    assert results[("hv-c", "IQ-HV-010")]["observed"] == [
        (
            "HV3: server 'Dell Inc.' 'PowerEdge R660' is not on the HCL (listed: Dell Inc. "
            "PowerEdge R650; HPE ProLiant DL360 Gen10 Plus)"
        )
    ]
    start = next(r for r in _records(qualified[1]) if r["kind"] == "run.start")
    # the HCL, and the requirements file every shipped spec names (its traceability)
    assert [d["name"] for d in start["data"]["data_files"]] == ["hcl", "urs"]


def test_what_the_stand_in_cannot_answer_is_not_executed(
    qualified: tuple[dict[str, Any], Path],
) -> None:
    results = _results(qualified[1])
    for test_id, cmdlet in (("IQ-HV-004", "Get-HotFix"), ("IQ-HV-052", "Get-Tpm"),
                            ("IQ-HV-059", "Get-VMProcessor"), ("IQ-HV-060", "Get-ClusterNode"),
                            ("IQ-HV-063", "Get-ItemProperty"),
                            ("IQ-HV-065", "Get-ChildItem")):  # fmt: skip
        r = results[("hv-a", test_id)]
        assert (r["verdict"], r["observed"]) == ("not-executed", None), r
        assert f"the endpoint does not know {cmdlet}" in r["reason"]
    for n in range(1, 8):
        r = results[("hv-a", f"OQ-HV-00{n}")]
        assert r["verdict"] == "not-executed", r
        assert "no real Hyper-V available; the stand-in does not change state" in r["reason"]
    # The define step was attempted and recorded, with the state before and after.
    actions = [r for r in _records(qualified[1]) if r["kind"] == "action"]
    define = [a["data"] for a in actions if a["data"].get("name") == "vm.define"]
    assert define and all(a["before"] == a["after"] == {"exists": False} for a in define)
    assert all(a["verdict"] == "not-executed" for a in define)


def test_no_password_in_the_bundle(lab: HypervLab, qualified: tuple[dict[str, Any], Path]) -> None:
    for host in HOSTS:
        assert _no_secret_under(qualified[1], lab.password(host)) == []


def test_platform_errors_give_error_verdicts_and_one_line(
    lab: HypervLab, executor_state: Path, tmp_path: Path
) -> None:
    """Wrong password, an unreachable endpoint and a missing VM: `error` verdicts, exit 4,
    no traceback."""
    inventory = json.loads(json.dumps(lab.inventory))
    hosts = inventory["all"]["children"]["hyperv_hosts"]["hosts"]
    hosts["hv-a"]["vqual_winrm_password"] = "not-the-password"
    hosts["hv-b"]["vqual_winrm_port"] = 1  # nothing listens there
    spec = yaml.safe_load(SPEC.read_text())
    spec["tests"] = [t for t in spec["tests"] if t["id"] in ("IQ-HV-001", "IQ-HV-050")] + [{
        "id": "IQ-HV-900", "title": "A VM that does not exist", "protocol": "IQ",
        "requirements": ["URS-HV-02"], "applies_to": ["hyperv_host"], "risk": ["high"],
        "check": "hyperv_vm", "params": {"vm": "no-such-vm", "field": "vcpus"},
        "expect": {"op": "equals", "value": 1}, "acceptance": "the VM has one vCPU",
    }]  # fmt: skip
    del spec["data_files"]
    del spec["requirements_file"]  # with its data file: this run is about platform errors
    spec_path = tmp_path / "errors.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = run_vqual(
        "qualify", "-i", str(_write_inventory(tmp_path / "hosts.yml", inventory)),
        "-s", str(spec_path), "-c", "CHG0000552", "--evidence-dir", str(tmp_path / "evidence"),
        "--json", state_dir=executor_state,
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    assert done.returncode == 4, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    results = _results(Path(summary["bundle"]))
    for test_id in ("IQ-HV-001", "IQ-HV-050"):
        assert results[("hv-a", test_id)]["verdict"] == "error"
        assert "login failed" in results[("hv-a", test_id)]["reason"]
        assert "connect failed" in results[("hv-b", test_id)]["reason"]
        assert results[("hv-c", test_id)]["verdict"] == "pass"
    missing = results[("hv-c", "IQ-HV-900")]
    assert (missing["verdict"], missing["observed"]) == ("error", None)
    assert "vm 'no-such-vm' not found" in missing["reason"]
    for r in results.values():
        assert "\n" not in (r["reason"] or "")
    for host in HOSTS:
        assert _no_secret_under(tmp_path, lab.password(host)) == []
        assert lab.password(host) not in done.stdout + done.stderr
    assert _no_secret_under(tmp_path / "evidence", "not-the-password") == []


def test_the_lab_inventory_gives_verdicts_not_errors(
    executor_state: Path, tmp_path: Path
) -> None:
    """The stand-in as `scripts/lab up` lists it (its own inventory fragment, group values
    included, no values added here), run through playbooks/hyperv_host.yml: every test of
    the spec has a verdict, none an error."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    ctx = LabContext(lab_dir=tmp_path / "lab", run_dir=tmp_path / "lab" / "run",
                     repo_root=None, log=lambda _m: None)
    comp = WinRMStandIn("127.0.0.167", 25994, inventory_host="winrm-hv1")
    assert comp.up(ctx).state == "running"
    try:
        inventory = {"all": {"children": comp.inventory(ctx)["groups"]}}
        done = run_vqual(
            "qualify", "-i", str(_write_inventory(tmp_path / "hosts.yml", inventory)),
            "-s", str(SPEC), "-c", "CHG0000553", "--evidence-dir", str(tmp_path / "ev"),
            "--playbook", "hyperv_host.yml", "--json", state_dir=executor_state,
        )  # fmt: skip
    finally:
        comp.down(ctx)
    # Nothing fails and nothing errs; what the stand-in cannot answer is not-executed.
    assert done.returncode == 3, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    assert summary["counts"]["error"] == 0 and summary["counts"]["fail"] == 0
    results = _results(Path(summary["bundle"]))
    for test_id in ("IQ-HV-001", "IQ-HV-002", "IQ-HV-033", "IQ-HV-054", "IQ-HV-055"):
        assert results[("winrm-hv1", test_id)]["verdict"] == "pass", test_id
    report = results[("winrm-hv1", "IQ-HV-065")]
    assert report["verdict"] == "not-executed"
    assert "the endpoint does not know Get-ChildItem" in report["reason"]
