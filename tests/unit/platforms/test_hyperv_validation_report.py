"""HV-12 (the newest Test-Cluster report) and the lab inventory of the WinRM stand-in: every
approved value the Hyper-V spec reads is there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification.checks.base import StepNotExecuted
from qualification.checks.hyperv import HypervValidationReport, file_time
from vqual_lab.component import LabContext
from vqual_lab.winrm_standin import WinRMStandIn, run_powershell
from qualification.platforms.hyperv import READ_CMDLETS
from tests.conftest import COLLECTION, REPO

CHECK = HypervValidationReport()


def _ps51(when: datetime) -> str:
    """A DateTime as Windows PowerShell 5.1's ConvertTo-Json writes it."""
    return f"/Date({int(when.timestamp() * 1000)})/"


def _report(name: str, when: datetime) -> dict[str, Any]:
    return {"Name": name, "FullName": f"C:\\Windows\\Cluster\\Reports\\{name}",
            "LastWriteTimeUtc": _ps51(when), "Length": 812345}


def test_file_times_in_both_powershell_forms() -> None:
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert file_time(_ps51(when)) == when
    assert file_time("\\/Date(1772368200000)\\/") == when
    assert file_time("2026-03-01T12:30:00Z") == when
    assert file_time("not a date") is None and file_time(None) is None


def test_no_report_is_a_finding() -> None:
    assert CHECK.extract([], {}) == [
        "no cluster validation report in C:\\Windows\\Cluster\\Reports (Test-Cluster not run)"
    ]


def test_an_old_newest_report_is_a_finding_naming_it() -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    older = old - timedelta(days=30)
    findings = CHECK.extract([_report("Validation Report A.htm", older),
                              _report("Validation Report B.htm", old)], {"max_age_days": 365})
    assert len(findings) == 1 and "Validation Report B.htm" in findings[0]
    assert "400 days old (limit 365)" in findings[0]


def test_a_recent_report_is_not_executed_never_pass() -> None:
    recent = datetime.now(UTC) - timedelta(days=3)
    with pytest.raises(StepNotExecuted, match="Validation Report B.htm.*reviewer"):
        CHECK.extract([_report("Validation Report A.htm", recent - timedelta(days=90)),
                       _report("Validation Report B.htm", recent)], {})


def test_parameters_are_checked() -> None:
    assert CHECK.validate_params({}) is None
    assert CHECK.validate_params({"max_age_days": 30}) is None
    assert "max_age_days" in str(CHECK.validate_params({"max_age_days": 0}))
    assert "unknown" in str(CHECK.validate_params({"days": 3}))
    assert CHECK.request({}).args == {"cmdlet": "Cluster-ValidationReports"}


def test_the_stand_in_does_not_know_the_report_listing() -> None:
    # It answers with PowerShell's own "not recognized" error: the adapter makes that
    # not-executed, and nothing is invented.
    result = run_powershell(f"{READ_CMDLETS['Cluster-ValidationReports']} | ConvertTo-Json",
                            {"Get-VMHost": [{"Name": "HV1"}]})
    assert result.exit_code == 1 and "is not recognized as the name of a cmdlet" in result.stderr


def _value_from_keys() -> set[str]:
    spec = yaml.safe_load((COLLECTION / "specs" / "hyperv-host.yaml").read_text())
    return {t["expect"]["value_from"] for t in spec["tests"] if "value_from" in t["expect"]}


def test_the_lab_inventory_has_every_approved_value_the_spec_reads(tmp_path: Path) -> None:
    ctx = LabContext(lab_dir=tmp_path, run_dir=tmp_path / "run", repo_root=None,
                     log=lambda _m: None)
    group = WinRMStandIn("127.0.0.168", 25995).inventory(ctx)["groups"]["hyperv_hosts"]
    expected = group["vars"]["vqual_expected"]
    assert _value_from_keys() <= set(expected)
    assert group["vars"]["vqual_cluster"]
    assert "password" not in yaml.safe_dump(group["vars"])
