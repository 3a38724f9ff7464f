"""The WinRM stand-in's PowerShell table, profile overrides and inventory, in process (no lab
needed)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from vqual_lab.component import LabContext
from vqual_lab.winrm_standin import (
    DEFAULT_PROFILE,
    WinRMStandIn,
    load_profile,
    run_command,
    run_powershell,
)

from qualification.errors import BadInputError
from qualification.checks.vocabulary import READ_CMDLETS
from tests.conftest import COLLECTION


def test_override_merges_properties_to_provoke_a_finding() -> None:
    profile = load_profile(DEFAULT_PROFILE, {"Get-VMHost": {"EnableEnhancedSessionMode": True}})
    out = run_powershell("Get-VMHost | ConvertTo-Json", profile)
    assert json.loads(out.stdout)["EnableEnhancedSessionMode"] is True
    # The asset itself is unchanged.
    assert load_profile(DEFAULT_PROFILE)["Get-VMHost"][0]["EnableEnhancedSessionMode"] is False


def test_override_replaces_a_whole_answer() -> None:
    profile = load_profile(DEFAULT_PROFILE, {"Confirm-SecureBootUEFI": [False]})
    assert run_powershell("Confirm-SecureBootUEFI | ConvertTo-Json", profile).stdout == "false\r\n"


def test_unknown_override_is_refused() -> None:
    with pytest.raises(BadInputError, match="no canned cmdlet 'Get-Tpm'"):
        load_profile(DEFAULT_PROFILE, {"Get-Tpm": [{}]})


def test_compress_and_indent_follow_convertto_json() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    compact = run_powershell("Get-VMSwitch | ConvertTo-Json -Compress", profile).stdout
    assert "\r\n" not in compact.rstrip("\r\n") and compact.startswith('[{"Name":')
    indented = run_powershell("get-vmswitch | convertto-json -Depth 3", profile).stdout
    assert json.loads(indented) == json.loads(compact)
    assert indented.count("\r\n") > 10


def test_encoded_command_is_decoded_as_utf16le() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    enc = base64.b64encode("Get-VMHost | ConvertTo-Json".encode("utf-16-le")).decode()
    result = run_command("powershell", ["-EncodedCommand", enc], profile)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ComputerName"] == "HV1"
    assert run_command("powershell -NoProfile", [], profile).exit_code == 1


def test_addresses_outside_loopback_are_refused() -> None:
    with pytest.raises(BadInputError, match="127.0.0.0/8"):
        WinRMStandIn(address="192.168.1.10")


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
