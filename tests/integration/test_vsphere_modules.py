"""The platform modules against VMware's simulator, run as Ansible runs a module: a separate
Python process reading its arguments. Idempotence, check mode, diff, one-line errors, and no
password in anything a module returns.

Brings up its own simulated vCenter (own lab directory, 127.0.0.148), like test_vsphere.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vqual_lab import vcsim
from vqual_lab.component import LabContext

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
COLLECTIONS = REPO
LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")
VC = dataclasses.replace(
    vcsim.DEFAULT_VCENTER, key="vcmodules", inventory_host="vc-modules",
    address="127.0.0.148", port=28646, vms=2,
)


@dataclasses.dataclass
class Sim:
    username: str
    password: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """This module's own simulated vCenter (overrides the session lab)."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    lab_dir = tmp_path_factory.mktemp("vsphere-modules-lab")
    if LAB_BIN.is_dir():
        shutil.copytree(LAB_BIN, lab_dir / "vcsim" / "bin")
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    component = vcsim.VcsimComponent((VC,))
    status = component.up(ctx)
    try:
        assert status.state == "running", status
        yield Sim(*vcsim.read_credentials(ctx, VC))
    finally:
        component.down(ctx)


def run(module: str, args: dict[str, Any], tmp_path: Path, *, check: bool = False,
        diff: bool = False, env: dict[str, str] | None = None) -> dict[str, Any]:
    payload = dict(args)
    if check:
        payload["_ansible_check_mode"] = True
    if diff:
        payload["_ansible_diff"] = True
    args_file = tmp_path / f"{module}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VMWARE_")}
    full_env["PYTHONPATH"] = str(COLLECTIONS)
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, str(COLLECTION / "plugins" / "modules" / f"{module}.py"), str(args_file)],
        capture_output=True, text=True, env=full_env, timeout=120, check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["_raw"] = done.stdout
    return result


def conn(sim: Sim) -> dict[str, Any]:
    return {"platform": "vsphere", "hostname": VC.address, "port": VC.port,
            "username": sim.username, "password": sim.password, "validate_certs": False,
            "datacenter": "DC0", "cluster": "DC0_C0"}


def test_info_modules_read_and_never_change(lab: Sim, tmp_path: Path) -> None:
    info = run("hypervisor_info", {**conn(lab), "gather": ["hosts", "clusters"]}, tmp_path)
    assert info["changed"] is False
    assert info["about"]["product"] == "VMware vCenter Server"
    assert [h["name"] for h in info["hosts"]] == [f"DC0_C0_H{i}" for i in range(4)]
    assert "datastores" not in info and info["clusters"][0]["name"] == "DC0_C0"
    vms = run("vm_info", {**conn(lab), "name": "DC0_C0_RP0_VM0"}, tmp_path)
    assert [v["name"] for v in vms["vms"]] == ["DC0_C0_RP0_VM0"] and vms["changed"] is False
    for result in (info, vms):
        assert lab.password not in result["_raw"]


def test_credentials_from_the_environment(lab: Sim, tmp_path: Path) -> None:
    env = {"VMWARE_HOST": VC.address, "VMWARE_PORT": str(VC.port), "VMWARE_USER": lab.username,
           "VMWARE_PASSWORD": lab.password, "VMWARE_VALIDATE_CERTS": "false"}
    result = run("vm_info", {"platform": "vsphere"}, tmp_path, env=env)
    assert "DC0_C0_RP0_VM1" in [v["name"] for v in result["vms"]]
    assert lab.password not in result["_raw"]


def test_power_is_idempotent_with_check_mode_and_diff(lab: Sim, tmp_path: Path) -> None:
    args = {**conn(lab), "name": "DC0_C0_RP0_VM0", "state": "stopped"}
    checked = run("vm_power", args, tmp_path, check=True, diff=True)
    assert checked["changed"] is True and checked["vm"]["power_state"] == "running"
    assert checked["diff"] == {"before": {"power_state": "running"},
                               "after": {"power_state": "stopped"}}
    done = run("vm_power", args, tmp_path)
    assert done["changed"] is True and done["vm"]["power_state"] == "stopped"
    again = run("vm_power", args, tmp_path)
    assert again["changed"] is False
    back = run("vm_power", {**args, "state": "running"}, tmp_path)
    assert back["changed"] is True and back["vm"]["power_state"] == "running"


def test_snapshot_create_delete_idempotent(lab: Sim, tmp_path: Path) -> None:
    args = {**conn(lab), "name": "DC0_C0_RP0_VM0", "snapshot": "before-CHG1"}
    assert run("vm_snapshot", args, tmp_path, check=True)["changed"] is True
    assert run("vm_snapshot", {**args, "state": "absent"}, tmp_path)["changed"] is False
    made = run("vm_snapshot", args, tmp_path, diff=True)
    assert made["changed"] is True and [s["name"] for s in made["snapshots"]] == ["before-CHG1"]
    assert made["diff"] == {"before": {"snapshots": []}, "after": {"snapshots": ["before-CHG1"]}}
    assert run("vm_snapshot", args, tmp_path)["changed"] is False
    reverted = run("vm_snapshot", {**args, "state": "reverted"}, tmp_path)
    assert reverted["changed"] is True and reverted["vm"]["name"] == "DC0_C0_RP0_VM0"
    gone = run("vm_snapshot", {**args, "state": "absent"}, tmp_path)
    assert gone["changed"] is True and gone["snapshots"] == []
    missing = run("vm_snapshot", {**args, "state": "reverted"}, tmp_path)
    assert missing["failed"] and "snapshot 'before-CHG1' of vm 'DC0_C0_RP0_VM0' not found" in missing["msg"]


def test_clone_and_migrate_are_idempotent(lab: Sim, tmp_path: Path) -> None:
    clone = {**conn(lab), "source": "DC0_C0_RP0_VM1", "name": "app-017"}
    assert run("vm_clone", clone, tmp_path, check=True)["changed"] is True
    assert "app-017" not in [v["name"] for v in run("vm_info", conn(lab), tmp_path)["vms"]]
    made = run("vm_clone", clone, tmp_path)
    assert made["changed"] is True and made["vm"]["power_state"] == "stopped"
    assert run("vm_clone", clone, tmp_path)["changed"] is False
    here = made["vm"]["host"]
    there = next(f"DC0_C0_H{i}" for i in range(4) if f"DC0_C0_H{i}" != here)
    move = {**conn(lab), "name": "app-017", "destination": there}
    checked = run("vm_migrate", move, tmp_path, check=True, diff=True)
    assert checked["changed"] is True and checked["vm"]["host"] == here
    assert checked["diff"] == {"before": {"host": here}, "after": {"host": there}}
    moved = run("vm_migrate", move, tmp_path)
    assert moved["changed"] is True and moved["vm"]["host"] == there
    assert run("vm_migrate", move, tmp_path)["changed"] is False
    nowhere = run("vm_migrate", {**move, "destination": "no-such-host"}, tmp_path)
    assert nowhere["failed"] and nowhere["msg"].endswith("host 'no-such-host' not found")


def test_maintenance_round_trip(lab: Sim, tmp_path: Path) -> None:
    args = {**conn(lab), "host": "DC0_C0_H2"}
    checked = run("host_maintenance", args, tmp_path, check=True, diff=True)
    assert checked["changed"] is True and checked["host"]["in_maintenance"] is False
    assert run("host_maintenance", args, tmp_path)["host"]["in_maintenance"] is True
    assert run("host_maintenance", args, tmp_path)["changed"] is False
    out = run("host_maintenance", {**args, "state": "absent"}, tmp_path)
    assert out["changed"] is True and out["host"]["in_maintenance"] is False


def test_platform_errors_fail_in_one_line_without_the_password(lab: Sim, tmp_path: Path) -> None:
    wrong = run("vm_info", {**conn(lab), "password": "Not-" + lab.password}, tmp_path)
    assert wrong["failed"] and wrong["msg"].startswith("vm_info failed: https://127.0.0.148:28646/sdk: login failed")
    unreachable = run("hypervisor_info", {**conn(lab), "port": 1}, tmp_path)
    assert unreachable["failed"] and "connect failed" in unreachable["msg"]
    missing = run("vm_power", {**conn(lab), "name": "no-such-vm", "state": "running"}, tmp_path)
    assert missing["msg"] == ("vm_power running no-such-vm failed: https://127.0.0.148:28646/sdk: "
                              "vm 'no-such-vm' not found")
    untrusted = run("vm_info", {**conn(lab), "validate_certs": True}, tmp_path)
    assert "certificate not trusted" in untrusted["msg"]
    for result in (wrong, unreachable, missing, untrusted):
        assert "\n" not in result["msg"]
        assert lab.password not in result["_raw"]
