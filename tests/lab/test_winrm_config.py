"""The WinRM stand-in's PowerShell table and profile overrides, in process (no lab needed)."""

from __future__ import annotations

import base64
import json

import pytest

from qualification.errors import BadInputError
from vqual_lab.winrm_standin import (
    DEFAULT_PROFILE,
    WinRMStandIn,
    load_profile,
    run_command,
    run_powershell,
)


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

