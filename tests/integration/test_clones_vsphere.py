"""`vqual clone` on VMware's simulator: clones of the template, compared by their VM part.

A private simulated vCenter (own lab directory, 127.0.0.153:28653, two VMs per resource pool
so ``DC0_C0_RP0_VM1`` is the template) is brought up by this module. The template is
qualified as the master (its VM fingerprint recorded); ``vqual clone --create 2`` clones it
through CloneVM_Task and qualifies the clones against the master's fingerprint; a clone
resized beyond the spec's allowed range then fails, naming the value and the range.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vqual_lab import vcsim
from vqual_lab.component import LabContext
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from tests.conftest import run_vqual

pytestmark = pytest.mark.lab

LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")
VC = dataclasses.replace(
    vcsim.DEFAULT_VCENTER, key="vcclones", inventory_host="vc-clones",
    address="127.0.0.153", port=28653, vms=2,
)
TEMPLATE = "DC0_C0_RP0_VM1"
PREFIX = "vqual-tmp-vsc"


@dataclasses.dataclass
class Sim:
    root: Path
    username: str
    password: str

    def platform(self) -> VspherePlatform:
        return VspherePlatform(
            Endpoint(VC.address, self.username, self.password, port=VC.port, validate_certs=False)
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """This module's own simulated vCenter (overrides the session lab)."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    root = tmp_path_factory.mktemp("clones-vsphere")
    lab_dir = root / "lab"
    if LAB_BIN.is_dir():
        shutil.copytree(LAB_BIN, lab_dir / "vcsim" / "bin")
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    component = vcsim.VcsimComponent((VC,))
    status = component.up(ctx)
    try:
        assert status.state == "running", status
        yield Sim(root, *vcsim.read_credentials(ctx, VC))
    finally:
        component.down(ctx)


def records(bundle: Path) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in (bundle / "records.jsonl").read_text().splitlines()
    ]


def write_site(sim: Sim, clones: list[str]) -> tuple[Path, Path]:
    vc_vars = {
        "ansible_connection": "local",
        "vqual_vsphere_host": VC.address,
        "vqual_vsphere_port": VC.port,
        "vqual_vsphere_username": sim.username,
        "vqual_vsphere_password": sim.password,
        "vqual_vsphere_validate_certs": False,
        "vqual_vsphere_datacenter": "DC0",
        "vqual_vsphere_cluster": "DC0_C0",
    }
    groups: dict[str, Any] = {
        "master_vm": {
            "hosts": {"template": {"vqual_vsphere_vm": TEMPLATE}},
            "vars": {**vc_vars, "vqual_target_kinds": ["master_vm"]},
        }
    }
    if clones:
        groups["clones"] = {
            "hosts": {name: {"vqual_vsphere_vm": name} for name in clones},
            "vars": {**vc_vars, "vqual_target_kinds": ["clone"]},
        }
    inventory = sim.root / f"hosts-{len(clones)}.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": groups}}))
    common = {"protocol": "IQ", "requirements": ["URS-VM-01"], "risk": ["high", "medium", "low"]}
    spec = {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": "vsphere-template", "title": "vSphere template as Master-VM",
                     "version": "1.0"},
        "requirements": ["URS-VM-01"],
        "tests": [
            {
                "id": "IQ-MVM-101", "title": "Virtual hardware fingerprint", **common,
                "applies_to": ["master_vm"], "scope": ["master", "clone"],
                "check": "vm_fingerprint", "params": {"platform": "vsphere", "field": "vm.vcpus"},
                "expect": {"op": "range", "min": 1}, "acceptance": "fingerprint recorded",
            },
            {
                "id": "IQ-CLN-101", "title": "Clone hardware as the template's", **common,
                "applies_to": ["master_vm"], "scope": ["clone"],
                "check": "clone_fingerprint", "params": {"part": "vm", "platform": "vsphere"},
                "expect": {"op": "absent"},
                "acceptance": "no difference outside identity and the sizing ranges",
            },
        ],
        "clone": {
            "sizing": {"vcpus": {"min": 1, "max": 2}, "memory_mib": {"min": 32, "max": 4096}},
            "master": {"require_approval": False},
        },
    }
    spec_path = sim.root / "vsphere-template.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return inventory, spec_path


def test_clones_of_the_template_compare_with_its_fingerprint(
    lab: Sim, executor_state: Path
) -> None:
    inventory, spec = write_site(lab, [])
    evidence = lab.root / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0005001",
                     "--evidence-dir", str(evidence), "--json", state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    master = Path(json.loads(done.stdout)["bundle"])
    master_fp = next(r["data"] for r in records(master) if r["kind"] == "fingerprint")
    assert master_fp["subject"] == "template" and master_fp["vm"]["vcpus"] >= 1

    names = [f"{PREFIX}-1", f"{PREFIX}-2"]
    platform = lab.platform()
    try:
        done = run_vqual(
            "clone", "-i", str(inventory), "-s", str(spec), "-c", "CHG0005002",
            "--master-bundle", str(master), "--create", "2", "--master-host", "template",
            "--prefix", PREFIX, "--evidence-dir", str(evidence), "--json",
            state_dir=executor_state,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = json.loads(done.stdout)
        assert out["master"]["created"] == names and out["verification"] == "valid"
        assert all(platform.vm_exists(name) for name in names)
        recs = records(Path(out["bundle"]))
        start = recs[0]["data"]
        assert start["clone"]["master_seal"] == out["master"]["seal"]
        assert sorted((p["target"], p["test_id"]) for p in start["planned"]) == sorted(
            (name, test) for name in names for test in ("IQ-CLN-101", "IQ-MVM-101")
        )
        results = [r["data"] for r in recs if r["kind"] == "check.result"]
        assert {(r["target"], r["test_id"], r["verdict"]) for r in results} == {
            (name, test, "pass") for name in names for test in ("IQ-CLN-101", "IQ-MVM-101")
        }
        # the password never reaches the evidence
        assert lab.password not in (Path(out["bundle"]) / "records.jsonl").read_text()
        assert lab.password not in (Path(out["bundle"]) / "inventory.json").read_text()

        # resize clone 2 beyond the allowed vCPU range: the clone run fails naming it
        from pyVmomi import vim

        obj, _props = platform._vm_obj(names[1])
        task = obj.ReconfigVM_Task(vim.vm.ConfigSpec(numCPUs=8))
        platform._wait("reconfigure", names[1], task)
        assert platform.vm(names[1]).vcpus == 8
        inventory2, _ = write_site(lab, names)
        done = run_vqual(
            "clone", "-i", str(inventory2), "-s", str(spec), "-c", "CHG0005003",
            "--master-bundle", str(master), "--clones", "clones",
            "--evidence-dir", str(evidence), "--json", state_dir=executor_state,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        recs = records(Path(json.loads(done.stdout)["bundle"]))
        by = {(r["data"]["target"], r["data"]["test_id"]): r["data"] for r in recs
              if r["kind"] == "check.result"}
        assert by[(names[0], "IQ-CLN-101")]["verdict"] == "pass"
        bad = by[(names[1], "IQ-CLN-101")]
        assert bad["verdict"] == "fail"
        assert bad["observed"] == [{
            "what": "vm.vcpus", "where": "vcpus", "master": master_fp["vm"]["vcpus"],
            "clone": 8, "detail": "outside the allowed range [1, 2]",
        }]
    finally:
        for name in names:
            if platform.vm_exists(name):
                platform.delete_vm(name, delete_storage=True)
        platform.close()
