"""The ``vm_decommission`` check: which platforms remove a VM, and what the observation after
the removal must show (libvirt: the domain's disks; vSphere: every file of the VM)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qualification.checks import get_check, validate_params
from qualification.checks.decommission import problems
from qualification.errors import SpecError
from qualification.spec import load_spec
from tests.conftest import COLLECTION, run_vqual


@pytest.mark.parametrize("platform", ["libvirt", "vsphere"])
def test_libvirt_and_vsphere_remove_through_their_own_probe(platform: str) -> None:
    params = {"platform": platform}
    assert validate_params("vm_decommission", params) is None
    request = get_check("vm_decommission").request(params)
    assert (request.probe, request.method) == (platform, "decommission")


def test_a_platform_that_cannot_remove_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    problem = validate_params("vm_decommission", {"platform": "hyperv"})
    assert problem is not None and "\n" not in problem
    assert "platform hyperv cannot remove a VM" in problem and "libvirt, vsphere" in problem
    spec = yaml.safe_load((COLLECTION / "specs" / "decommission.yaml").read_text())
    spec["tests"][0]["params"]["platform"] = "hyperv"
    spec["data_files"] = {}
    spec.pop("requirements_file")
    path = tmp_path / "decommission-hyperv.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="platform hyperv cannot remove a VM"):
        load_spec(path)
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"vm1": {"vqual_target_kinds": ["clone"]}}}}))
    state = tmp_path / "state"
    assert run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state).returncode == 0
    done = run_vqual("decommission", "-i", str(inventory), "--limit", "vm1", "-s", str(path),
                     "-c", "CHG0009602", "--evidence-dir", str(tmp_path / "ev"), "--no-server",
                     state_dir=state)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "platform hyperv cannot remove a VM" in line, line
    assert not (tmp_path / "ev").exists()  # refused before a run was opened


def _value(storage: str, exists: bool, files: dict[str, bool]) -> dict[str, object]:
    return {"vm": "app-vm", "storage": storage, "error": None,
            "after": {"exists": exists, "power_state": "stopped" if exists else None,
                      "files": files}}


def test_vsphere_files_are_judged_against_the_storage_declaration() -> None:
    vmx, disk = "[LocalDS_0] app-vm/app-vm.vmx", "[LocalDS_0] app-vm/app-vm.vmdk"
    assert problems(_value("delete", False, {vmx: False, disk: False})) == []
    assert problems(_value("delete", False, {vmx: False, disk: True})) == [
        f"file {disk} is still present (declared: delete)"]
    assert problems(_value("retain", False, {vmx: True, disk: True})) == []
    assert problems(_value("retain", True, {vmx: True, disk: False})) == [
        "VM app-vm is still defined (stopped)", f"file {disk} is gone (declared: retain)"]
