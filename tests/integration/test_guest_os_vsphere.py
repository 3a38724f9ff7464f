"""Guest OS support on vSphere (URS-HV-01): `vqual qualify` with the shipped vsphere-guest-os
spec on VMware's simulator. Each VM's guest id is judged against the example support list
for the ESXi version of its host; the list is sealed in the bundle as a data file.

The simulator (govmomi 0.24, vSphere 6.5's API) accepts only the guest ids of that era
(debian10_64Guest yes, debian11_64Guest no), and its VMs start as otherGuest, which names no
OS version; so the guest ids are set here with ReconfigVM, on this module's own simulated
vCenter (its own lab directory and address, like test_rollout_inventory_vcsim.py), never on
the shared lab's. Marked ``lab``: it needs the simulator binary the lab builds.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyVim.task import WaitForTask
from pyVmomi import vim
from vqual_lab import vcsim
from vqual_lab.component import LabContext

from tests.conftest import COLLECTION, run_vqual

pytestmark = pytest.mark.lab

SPEC = COLLECTION / "specs" / "vsphere-guest-os.yaml"
LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")
ADDRESS = "127.0.0.157"


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[LabContext, vcsim.VcsimInstance, dict[str, Any]]]:
    """This module's own simulated vCenter (overrides the session lab)."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    lab_dir = tmp_path_factory.mktemp("guest-os-vcsim")
    if LAB_BIN.is_dir():  # the lab's build of the same source: a cache hit instead of a build
        shutil.copytree(LAB_BIN, lab_dir / "vcsim" / "bin")
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    inst = vcsim.VcsimInstance(key="guestos", inventory_host="guestos-vc", mode="vcenter",
                               address=ADDRESS, port=_free_port(ADDRESS), cluster_hosts=2, vms=3)
    component = vcsim.VcsimComponent((inst,))
    status = component.up(ctx)
    try:
        assert status.state == "running", status
        yield ctx, inst, {"all": {"children": component.inventory(ctx)["groups"]}}
    finally:
        component.down(ctx)


def _set_guest_ids(ctx: LabContext, inst: vcsim.VcsimInstance, ids: dict[str, str]) -> list[str]:
    """Reconfigure the simulator's VMs in name order with the given guest ids (by position:
    ``vm0`` is the first VM); returns all VM names."""
    si = vcsim.connect(ctx, inst)
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine],
                                                       True)
        vms = sorted(view.view, key=lambda v: v.name)
        view.Destroy()
        for position, vm in enumerate(vms):
            guest_id = ids.get(f"vm{position}", ids.get("*", "otherGuest"))
            template = vm.config.template
            if template:  # a template is not reconfigured: made a VM for it, then again a template
                vm.MarkAsVirtualMachine(pool=vm.resourcePool or _any_pool(content),
                                        host=vm.runtime.host)
            WaitForTask(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(guestId=guest_id)))
            if template:
                vm.MarkAsTemplate()
        return [vm.name for vm in vms]
    finally:
        vcsim.disconnect(si)


def _any_pool(content: Any) -> Any:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ResourcePool], True)
    try:
        return view.view[0]
    finally:
        view.Destroy()


def _qualify(inventory: dict[str, Any], state: Path, tmp_path: Path, change: str
             ) -> tuple[int, dict[str, Any], Path]:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(inventory)), sort_keys=False))
    done = run_vqual("qualify", "-i", str(path), "-s", str(SPEC), "-c", change,
                     "--evidence-dir", str(tmp_path / "evidence"), "--json", state_dir=state)
    assert done.stdout, done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid"
    bundle = Path(summary["bundle"])
    records = [json.loads(base64.b64decode(json.loads(line)["payload"]))
               for line in (bundle / "records.jsonl").read_text().splitlines()]
    (result,) = [r["data"] for r in records if r["kind"] == "check.result"]
    return done.returncode, result, bundle


def test_supported_guest_ids_pass_and_the_list_is_sealed(
        lab: tuple[LabContext, vcsim.VcsimInstance, dict[str, Any]], executor_state: Path,
        tmp_path: Path) -> None:
    ctx, inst, inventory = lab
    _set_guest_ids(ctx, inst, {"vm0": "debian10_64Guest", "vm1": "rhel7_64Guest",
                               "*": "windows9Server64Guest"})
    code, result, bundle = _qualify(inventory, executor_state, tmp_path, "CHG0018201")
    assert (result["test_id"], result["verdict"]) == ("IQ-VS-GOS-001", "pass"), result
    assert code == 0
    assert (bundle / "data" / "guest_os").read_bytes() == (
        COLLECTION / "specs" / "data" / "guest-os-example.yaml").read_bytes()


def test_an_unversioned_or_unlisted_guest_fails_naming_the_vm(
        lab: tuple[LabContext, vcsim.VcsimInstance, dict[str, Any]], executor_state: Path,
        tmp_path: Path) -> None:
    ctx, inst, inventory = lab
    names = _set_guest_ids(ctx, inst, {"vm0": "otherGuest", "vm1": "debian8_64Guest",
                                       "*": "debian10_64Guest"})
    code, result, _bundle = _qualify(inventory, executor_state, tmp_path, "CHG0018202")
    assert code == 1 and result["verdict"] == "fail", result
    listed = "listed: debian 10, 9; rhel 7; windows-server 2016"
    assert result["observed"] == [
        f"{names[0]}: other (version unknown) is not supported by VMware ESXi 6.5.0 ({listed})",
        f"{names[1]}: debian 8 is not supported by VMware ESXi 6.5.0 ({listed})",
    ]
