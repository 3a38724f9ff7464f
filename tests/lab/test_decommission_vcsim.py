"""Decommissioning a vSphere VM through the platform plug-in (`vqual decommission`; VQ-96).

On the session lab's simulated vCenter (the ``vcenter`` group of the lab inventory), two
throwaway VMs with a disk each are created (CreateVM_Task: their own folder, .vmx and disk
files on the datastore; not clones: the simulator's CloneVM_Task points the source's disk at
the clone's file, which would change the lab's VMs for other tests) and qualified (their virtual hardware from the platform, one bundle each) and
backed up (a copy of each one's .vmx, its SHA-256 recorded in the store). Then ``vqual
decommission`` with the shipped spec on the vSphere platform:

- is refused while another host declares it depends on the first (exit 2; the VM is still in
  the inventory and its files on the datastore);
- otherwise powers it off (it runs) and destroys it (Destroy_Task): the run passes, the VM is gone from
  the inventory and its files from the datastore, as the datastore browser and the
  simulator's datastore directory show;
- the second, declared ``vqual_decommission_storage: retain``, is unregistered: gone from the
  inventory, its files still on the datastore (removed by the test afterwards).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual

pytestmark = [pytest.mark.lab]

LAB_INV = REPO / "inventories" / "lab"
NAMES = ("vqual-tmp-decom-vs1", "vqual-tmp-decom-vs2")


def records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


def _vcenter() -> dict[str, Any]:
    children = yaml.safe_load((LAB_INV / "hosts.yml").read_text())["all"]["children"]
    if "vcenter" not in children:
        pytest.skip("the lab's vcsim component is not up")
    (values,) = children["vcenter"]["hosts"].values()
    return dict(values)


def _platform(vc: dict[str, Any]) -> Any:
    from vqual_lab import manager, vcsim

    from qualification.platforms.vsphere.adapter import VspherePlatform
    from qualification.platforms.vsphere.endpoint import Endpoint

    user, password = vcsim.read_credentials(manager.context(), vcsim.DEFAULT_VCENTER)
    return VspherePlatform(Endpoint(vc["vqual_vsphere_host"], user, password,
                                    port=vc["vqual_vsphere_port"], validate_certs=False))


def _local(platform: Any, path: str) -> Path:
    """Where the simulator keeps the datastore file ``path`` (its datastores are directories
    on this machine: the datastore's URL)."""
    from qualification.platforms.vsphere.decommission import split_path

    store, folder, name = split_path(path)
    (url,) = [d.path for d in platform.datastores() if d.name == store]
    return Path(url.removeprefix("file://")) / folder / name


def _create(platform: Any, name: str) -> None:
    """A stopped VM with one 1 MiB disk on the first datastore."""
    from pyVmomi import vim

    pool, folder, store = platform._placement_pool_and_folder()
    device = vim.vm.device
    controller = device.VirtualDeviceSpec(operation="add", device=device.ParaVirtualSCSIController(
        key=-100, busNumber=0, sharedBus="noSharing"))
    disk = device.VirtualDeviceSpec(operation="add", fileOperation="create", device=device.VirtualDisk(
        key=-101, controllerKey=-100, unitNumber=0, capacityInKB=1024,
        backing=device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", fileName="")))
    spec = vim.vm.ConfigSpec(name=name, numCPUs=1, memoryMB=64, guestId="otherGuest64",
                             files=vim.vm.FileInfo(vmPathName=f"[{store}]"),
                             deviceChange=[controller, disk])
    platform._wait("create vm", name, folder.CreateVM_Task(config=spec, pool=pool))


def _files(platform: Any, name: str) -> list[str]:
    from qualification.platforms.vsphere.decommission import _Browser, vm_files

    return vm_files(platform, _Browser(platform), platform._vm_obj(name)[1]["config"])


def _remove_folder(platform: Any, name: str, files: list[str]) -> None:
    """Remove the VM's own folder from the simulator's datastore (what retain left behind)."""
    for path in [f for f in files if f.endswith(f"{name}/{name}.vmx")]:
        shutil.rmtree(_local(platform, path).parent, ignore_errors=True)


@pytest.fixture()
def site(lab: object, tmp_path: Path) -> Iterator[dict[str, Any]]:
    vc = _vcenter()
    platform = _platform(vc)
    state = tmp_path / "state"
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    store = tmp_path / "backups"
    files: dict[str, list[str]] = {}
    hosts: dict[str, Any] = {}
    login = {k: v for k, v in vc.items() if k != "vqual_target_kinds"}
    try:
        for name in NAMES:
            _create(platform, name)
            files[name] = _files(platform, name)
            (vmx,) = [f for f in files[name] if f.endswith(".vmx")]
            backup = store / name / "config-1.vmx"
            backup.parent.mkdir(parents=True)
            shutil.copyfile(_local(platform, vmx), backup)
            digest = hashlib.sha256(backup.read_bytes()).hexdigest()
            backup.with_name("config-1.vmx.sha256").write_text(f"{digest}  config-1.vmx\n")
            hosts[name] = {**login, "vqual_target_kinds": ["clone"], "vqual_vsphere_vm": name,
                           "vqual_backup_store": str(store)}
        platform.power_on(NAMES[0])  # removed while running: powered off first
        hosts[NAMES[1]]["vqual_decommission_storage"] = "retain"
        hosts["app-frontend"] = {"ansible_connection": "local",
                                 "vqual_target_kinds": ["linux_host"],
                                 "vqual_depends_on": [NAMES[0]]}
        inventory = tmp_path / "inv.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        qspec = tmp_path / "fp.yaml"
        qspec.write_text(yaml.safe_dump({
            "apiVersion": "vqual/v1", "kind": "Protocol",
            "metadata": {"name": "decom-fp", "title": "VM fingerprint", "version": "1.0"},
            "requirements": ["URS-MVM-01"],
            "tests": [{"id": "IQ-FP-002", "title": "VM fingerprint", "protocol": "IQ",
                       "requirements": ["URS-MVM-01"], "applies_to": ["clone"],
                       "risk": ["high", "medium", "low"], "scope": ["master", "clone"],
                       "check": "vm_fingerprint",
                       "params": {"platform": "vsphere", "field": "vm.vcpus"},
                       "expect": {"op": "range", "min": 1}, "acceptance": "observed"}],
        }))
        evidence = tmp_path / "evidence"
        done = run_vqual("qualify", "-i", str(inventory), "-s", str(qspec), "-c", "CHG0009600",
                         "--limit", ",".join(NAMES), "--evidence-dir", str(evidence), "--json",
                         state_dir=state)
        assert done.returncode == 0, done.stdout + done.stderr
        spec = yaml.safe_load((COLLECTION / "specs" / "decommission.yaml").read_text())
        spec["tests"][0]["params"]["platform"] = "vsphere"
        spec["data_files"] = {}
        spec.pop("requirements_file")
        decom_spec = tmp_path / "decommission-vsphere.yaml"
        decom_spec.write_text(yaml.safe_dump(spec, sort_keys=False))
        yield {"state": state, "inventory": inventory, "evidence": evidence,
               "spec": decom_spec, "platform": platform, "files": files}
    finally:
        for name in NAMES:
            if platform.vm_exists(name):
                platform.power_off(name)
                platform.delete_vm(name, delete_storage=True)
            _remove_folder(platform, name, files.get(name, []))
        platform.close()


def decommission(site: dict[str, Any], name: str) -> tuple[int, dict[str, Any], str]:
    done = run_vqual("decommission", "-i", str(site["inventory"]), "--limit", name,
                     "-s", str(site["spec"]), "-c", "CHG0009601",
                     "--evidence-dir", str(site["evidence"]), "--json", state_dir=site["state"])
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, payload, done.stderr


def _on_datastore(site: dict[str, Any], name: str) -> list[bool]:
    platform = site["platform"]
    return [_local(platform, path).exists() for path in site["files"][name]]


def test_vsphere_decommission_refused_then_destroyed_or_retained_as_declared(
    site: dict[str, Any],
) -> None:
    platform = site["platform"]
    first, second = NAMES
    assert any(f.endswith(".vmdk") for f in site["files"][first]), site["files"][first]
    code, _, err = decommission(site, first)
    assert code == 2 and "app-frontend depend(s) on it" in err and "Traceback" not in err
    assert platform.vm_exists(first) and all(_on_datastore(site, first))  # nothing changed

    hosts = yaml.safe_load(site["inventory"].read_text())
    del hosts["all"]["hosts"]["app-frontend"]["vqual_depends_on"]
    site["inventory"].write_text(yaml.safe_dump(hosts))
    code, out, err = decommission(site, first)
    assert code == 0, err + json.dumps(out)
    assert not platform.vm_exists(first) and not any(_on_datastore(site, first))
    bundle = Path(out["bundle"])
    recs = records(bundle)
    assert recs[0]["data"]["mode"] == "decommission"
    actions = [r["data"] for r in recs if r["kind"] == "action"]
    assert [a["name"] for a in actions] == ["vm.decommission"]
    before, after = actions[0]["before"], actions[0]["after"]
    assert before["exists"] and before["power_state"] == "running"
    assert all(before["files"].values())
    assert not after["exists"] and sorted(after["files"]) == site["files"][first]
    assert not any(after["files"].values())
    assert run_vqual("verify", str(bundle), state_dir=site["state"]).returncode == 0

    code, out, err = decommission(site, second)
    assert code == 0, err + json.dumps(out)
    assert not platform.vm_exists(second) and all(_on_datastore(site, second))
    (action,) = [r["data"] for r in records(Path(out["bundle"])) if r["kind"] == "action"]
    assert not action["after"]["exists"] and all(action["after"]["files"].values())
    _remove_folder(platform, second, site["files"][second])
    assert not any(_on_datastore(site, second))  # the shared datastore left as found
