"""Hyper-V check types: parameters, and how they read observations in the shapes the adapter
returns (objects as Windows PowerShell's ConvertTo-Json writes them; no real Hyper-V host was
available, so the shapes follow Microsoft's documentation of each cmdlet's output type)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qualification.checks import Observation, evaluate, get_check, validate_params
from qualification.checks.base import StepNotExecuted
from qualification.checks.hyperv import HOST_FIELDS, HypervValidationReport, file_time

HOST: dict[str, Any] = {
    "name": "HV2",
    "hardware": {"vendor": "Dell Inc.", "model": "PowerEdge R650"},
    "bios": {"vendor": "Dell Inc.", "version": "2.17.0", "firmware_type": "Uefi"},
    "product": {"name": "Windows Server 2019 Datacenter", "version": "10.0.17763"},
    "vmhost": {"migration_authentication": "CredSSP"},
}


def _decide(check: str, params: dict[str, Any], value: Any, expect: dict[str, Any]) -> Any:
    assert validate_params(check, params) is None
    return evaluate(get_check(check), Observation(value=value), params, expect)


def test_host_field_reads_a_dotted_path_and_rejects_unknown_fields() -> None:
    out = _decide(
        "hyperv_host",
        {"field": "vmhost.migration_authentication"},
        HOST,
        {"op": "equals", "value": "Kerberos"},
    )
    assert (out.verdict, out.observed) == ("fail", "CredSSP")
    assert "vmhost.enhanced_session_mode" in HOST_FIELDS
    bad = validate_params("hyperv_host", {"field": "vmhost.password"})
    assert bad is not None and "field must be one of" in bad


def test_cmdlet_modes() -> None:
    volumes = [
        {"MountPoint": "C:", "ProtectionStatus": 1},
        {"MountPoint": "D:", "ProtectionStatus": 0},
    ]
    findings = _decide(
        "hyperv_cmdlet",
        {
            "cmdlet": "Get-BitLockerVolume",
            "field": "ProtectionStatus",
            "key": "MountPoint",
            "want": 1,
        },
        volumes,
        {"op": "absent"},
    )
    assert findings.verdict == "fail"
    assert findings.observed == ["Get-BitLockerVolume D:: ProtectionStatus is 0, want 1"]
    members = _decide(
        "hyperv_cmdlet",
        {"cmdlet": "Get-LocalGroupMember", "field": "Name", "as_list": True},
        [{"Name": "LAB\\hv-ops"}, {"Name": "LAB\\hv-admin"}],
        {"op": "equals", "value": ["LAB\\hv-admin", "LAB\\hv-ops"]},
    )
    assert members.verdict == "pass"
    one = _decide(
        "hyperv_cmdlet",
        {"cmdlet": "Confirm-SecureBootUEFI"},
        [False],
        {"op": "equals", "value": True},
    )
    assert (one.verdict, one.observed) == ("fail", False)
    roles = _decide(
        "hyperv_cmdlet",
        {"cmdlet": "Get-ClusterNetwork", "field": "Role"},
        [{"Name": "Cluster", "Role": 1}, {"Name": "Client", "Role": 3}],
        {"op": "equals", "value": {"Cluster": 1, "Client": 3}},
    )
    assert roles.verdict == "pass"
    named = _decide(
        "hyperv_cmdlet",
        {"cmdlet": "Get-ClusterNode", "field": "State", "name": "HV9"},
        [{"Name": "HV1", "State": 0}],
        {"op": "equals", "value": 0},
    )
    assert named.verdict == "error" and "no object with Name 'HV9' (found: HV1)" in named.reason
    assert "at most one of" in str(
        validate_params("hyperv_cmdlet", {"cmdlet": "Get-Tpm", "as_list": True, "want": 1})
    )
    assert "cmdlet must be one of" in str(validate_params("hyperv_cmdlet", {"cmdlet": "Stop-VM"}))


def test_features_finds_missing_and_unexpected_roles() -> None:
    out = _decide(
        "hyperv_features",
        {"required": ["Hyper-V", "Failover-Clustering"], "allowed": ["RSAT"]},
        {"Hyper-V": True, "Failover-Clustering": False, "Web-Server": True, "RSAT": True},
        {"op": "absent"},
    )
    assert out.observed == [
        "Failover-Clustering is not installed",
        "Web-Server is installed but not allowed",
    ]


def test_vswitch_observes_every_switch() -> None:
    switches = [
        {"name": "vSwitch-Production", "allow_management_os": True},
        {"name": "vSwitch-Management", "allow_management_os": True},
    ]
    out = _decide(
        "hyperv_vswitch",
        {"field": "allow_management_os"},
        switches,
        {"op": "equals", "value": {"vSwitch-Production": False, "vSwitch-Management": True}},
    )
    assert out.verdict == "fail"
    assert out.observed == {"vSwitch-Production": True, "vSwitch-Management": True}


def test_hcl_names_the_host_and_its_bios() -> None:
    entry = {
        "vendor": "Dell Inc.",
        "model": "PowerEdge R650",
        "firmware": ["2.19.1"],
        "product": "Windows Server 2019 Datacenter",
        "versions": ["10.0.17763"],
    }
    out = _decide(
        "hyperv_hcl", {"hcl": "hcl"}, {"hosts": [HOST], "entries": [entry]}, {"op": "absent"}
    )
    assert out.observed == [
        "HV2: Dell Inc. PowerEdge R650 BIOS '2.17.0' is not on the HCL (listed: 2.19.1)"
    ]


def test_oq_step_not_executed_carries_the_first_reason() -> None:
    reason = (
        "create_vm not supported: no real Hyper-V available; the stand-in does not change state"
    )
    value = {
        "steps": {
            "define": {"verdict": "not-executed", "reason": reason},
            "start": {"verdict": "not-executed", "reason": "step define did not pass"},
        }
    }
    define = _decide("hyperv_oq", {"step": "define"}, value, {"op": "equals", "value": "pass"})
    start = _decide("hyperv_oq", {"step": "start"}, value, {"op": "equals", "value": "pass"})
    assert (define.verdict, define.reason) == ("not-executed", reason)
    assert start.verdict == "not-executed"
    assert start.reason == f"step define did not pass: {reason}"
    ran = {"steps": {"define": {"verdict": "fail", "reason": "x"}}}
    assert (
        _decide("hyperv_oq", {"step": "define"}, ran, {"op": "equals", "value": "pass"}).verdict
        == "fail"
    )


@pytest.mark.parametrize(
    ("check", "params"),
    [
        ("hyperv_vm", {"vm": "x", "field": "secret"}),
        ("hyperv_oq", {"step": "explode"}),
        ("hyperv_hcl", {}),
        ("hyperv_features", {"required": []}),
        ("hyperv_vswitch", {"field": "x"}),
    ],
)
def test_bad_params_are_named(check: str, params: dict[str, Any]) -> None:
    problem = validate_params(check, params)
    assert problem is not None and problem.startswith(check)


# -- HV-12: the newest Test-Cluster report (hyperv_validation_report) ----------------------

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
