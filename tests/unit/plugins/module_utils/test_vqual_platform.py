"""The platform modules' dispatch and argument handling, without a vSphere endpoint: the
libvirt adapter on libvirt's in-process test driver, missing arguments, a controller without
the qualification package; the read-only modules with ``platform: hyperv`` against the WinRM
stand-in in this test process (no real Hyper-V host was available: the stand-in answers read
cmdlets only). Run as Ansible runs a module (a separate Python process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vqual_lab.winrm_standin import DEFAULT_PROFILE, StandInServer, load_profile

REPO = Path(__file__).resolve().parents[4]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
COLLECTIONS = REPO
MODULES = ("hypervisor_info", "vm_info", "vm_power", "vm_snapshot", "vm_clone", "vm_migrate",
           "host_maintenance")

# Runs the module with the qualification package made unimportable.
_WITHOUT_VQUAL = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "qualification" or name.startswith("qualification."):
            raise ImportError("No module named " + repr(name))
        return None
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(module: str, args: dict[str, Any], tmp_path: Path, *, check: bool = False,
        blocked: bool = False, env: dict[str, str] | None = None) -> dict[str, Any]:
    payload = {**args, "_ansible_check_mode": check}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    path = str(COLLECTION / "plugins" / "modules" / f"{module}.py")
    command = [sys.executable, path, str(args_file)]
    if blocked:
        command = [sys.executable, "-c", _WITHOUT_VQUAL, path, str(args_file)]
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("VMWARE_", "VQUAL_LIBVIRT", "VQUAL_PLATFORM"))}
    full_env["PYTHONPATH"] = str(COLLECTIONS)
    full_env["VQUAL_STATE_DIR"] = str(tmp_path / "state")
    full_env.update(env or {})
    done = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120,
                          check=False)
    assert "Traceback" not in done.stderr, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


LIBVIRT = {"platform": "libvirt", "uri": "test:///default"}


def test_info_modules_on_libvirt(tmp_path: Path) -> None:
    info = run("hypervisor_info", LIBVIRT, tmp_path)
    assert info["changed"] is False and info["about"]["product"] == "TEST"
    assert info["hosts"][0]["cpu"]["count"] == 16
    assert "no cluster object" in info["not_supported"]["clusters"]
    vms = run("vm_info", {**LIBVIRT, "name": "test"}, tmp_path)
    assert vms["vms"][0]["power_state"] == "running"


def test_platform_and_uri_from_the_environment(tmp_path: Path) -> None:
    env = {"VQUAL_PLATFORM": "libvirt", "VQUAL_LIBVIRT_URI": "test:///default"}
    assert run("vm_info", {}, tmp_path, env=env)["vms"][0]["name"] == "test"


def test_operations_on_libvirt_in_check_mode_and_for_real(tmp_path: Path) -> None:
    # The test driver keeps no state between connections: each call starts from its default.
    checked = run("vm_power", {**LIBVIRT, "name": "test", "state": "stopped"}, tmp_path,
                  check=True)
    assert checked["changed"] is True and checked["vm"]["power_state"] == "running"
    stopped = run("vm_power", {**LIBVIRT, "name": "test", "state": "stopped"}, tmp_path)
    assert stopped["changed"] is True and stopped["vm"]["power_state"] == "stopped"
    same = run("vm_power", {**LIBVIRT, "name": "test", "state": "running"}, tmp_path)
    assert same["changed"] is False
    snap = run("vm_snapshot", {**LIBVIRT, "name": "test", "snapshot": "s1"}, tmp_path)
    assert snap["changed"] is True and [s["name"] for s in snap["snapshots"]] == ["s1"]
    # The adapter refuses maintenance while VMs run on the host (the test driver's "test").
    refused = run("host_maintenance", {**LIBVIRT}, tmp_path)
    assert refused["msg"] == ("host_maintenance present failed: test:///default: enter "
                              "maintenance on vm refused: VMs still running: test")
    out = run("host_maintenance", {**LIBVIRT, "state": "absent"}, tmp_path, check=True)
    assert out["changed"] is False and out["host"]["in_maintenance"] is False


def test_libvirt_errors_are_one_line(tmp_path: Path) -> None:
    missing = run("vm_power", {**LIBVIRT, "name": "nope", "state": "running"}, tmp_path)
    assert missing["failed"] and missing["msg"].startswith("vm_power running nope failed: ")
    assert "\n" not in missing["msg"]
    no_uri = run("vm_info", {"platform": "libvirt"}, tmp_path)
    assert no_uri["msg"] == "vm_info failed: uri (or VQUAL_LIBVIRT_URI) is required for libvirt"


def test_an_unknown_platform_names_the_registered_ones(tmp_path: Path) -> None:
    # The modules take any registered platform plug-in; no list of choices in the collection.
    result = run("vm_info", {"platform": "xen"}, tmp_path)
    assert result["failed"]
    assert result["msg"] == "vm_info failed: unknown platform 'xen' (known: hyperv, libvirt, vsphere)"


def test_vsphere_needs_host_user_and_password(tmp_path: Path) -> None:
    result = run("vm_info", {"platform": "vsphere", "hostname": "vc.example.org"}, tmp_path)
    assert result["failed"]
    assert result["msg"].startswith("vm_info failed: username, password required for vsphere")


def test_password_is_no_log(tmp_path: Path) -> None:
    result = run("vm_info", {"platform": "vsphere", "hostname": "127.0.0.1", "port": 9,
                             "username": "u", "password": "pw-4711-secret"}, tmp_path)
    assert result["failed"] and "connect failed" in result["msg"]
    assert "pw-4711-secret" not in json.dumps(result)


@pytest.mark.parametrize("module", MODULES)
def test_a_controller_without_vqual_gets_one_clear_message(module: str, tmp_path: Path) -> None:
    own = {
        "hypervisor_info": {}, "vm_info": {}, "host_maintenance": {},
        "vm_power": {"name": "x", "state": "running"},
        "vm_snapshot": {"name": "x", "snapshot": "s"},
        "vm_clone": {"source": "a", "name": "b"},
        "vm_migrate": {"name": "x", "destination": "qemu:///system"},
    }
    result = run(module, {**LIBVIRT, **own[module]}, tmp_path, blocked=True)
    assert result["failed"] and "vqual (the qualification package)" in result["msg"]


# -- platform: hyperv, against the WinRM stand-in ------------------------------------------

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
