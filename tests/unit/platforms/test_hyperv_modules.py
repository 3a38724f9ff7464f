"""The read-only platform modules with ``platform: hyperv``, run as Ansible runs a module (a
separate Python process), against the WinRM stand-in in this test process. No real Hyper-V
host was available: the stand-in answers read cmdlets only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vqual_lab.winrm_standin import DEFAULT_PROFILE, StandInServer, load_profile
from tests.unit.platforms.test_vsphere_modules_dispatch import run

ADDRESS = "127.0.0.167"
PASSWORD = "pw-hyperv-module-4711"


@pytest.fixture(scope="module")
def hyperv_args() -> Iterator[dict[str, Any]]:
    server = StandInServer((ADDRESS, 0), "svc", PASSWORD, load_profile(DEFAULT_PROFILE))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "platform": "hyperv",
            "hostname": ADDRESS,
            "port": server.server_address[1],
            "username": "svc",
            "password": PASSWORD,
            "winrm_scheme": "http",
            "winrm_transport": "basic",
        }
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_hypervisor_info_reads_a_hyperv_host(hyperv_args: dict[str, Any], tmp_path: Path) -> None:
    result = run("hypervisor_info", hyperv_args, tmp_path)
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["about"]["platform"] == "hyperv"
    assert [h["name"] for h in result["hosts"]] == ["HV1"]
    assert {n["name"] for n in result["networks"]} == {"vSwitch-Production", "vSwitch-Management"}
    assert set(result["not_supported"]) == {"clusters", "datastores"}
    assert PASSWORD not in json.dumps(result)


def test_vm_info_lists_the_hosts_vms(hyperv_args: dict[str, Any], tmp_path: Path) -> None:
    result = run("vm_info", hyperv_args, tmp_path)
    assert not result.get("failed"), result
    assert "gxp-app-01" in json.dumps(result)


def test_operation_modules_refuse_hyperv(hyperv_args: dict[str, Any], tmp_path: Path) -> None:
    result = run("vm_power", {**hyperv_args, "name": "gxp-app-01", "state": "stopped"}, tmp_path)
    assert result["failed"]
    assert result["msg"] == "vm_power failed: platform hyperv supports only the read-only modules"


def test_wrong_password_is_one_line_and_no_log(hyperv_args: dict[str, Any], tmp_path: Path) -> None:
    result = run("hypervisor_info", {**hyperv_args, "password": "x" + PASSWORD}, tmp_path)
    assert result["failed"] and "login failed" in result["msg"] and "\n" not in result["msg"]
    assert PASSWORD not in json.dumps(result)
