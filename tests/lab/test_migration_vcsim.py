"""What the vCenter simulator can do for a migration off vSphere (docs/conversion.md, "Migrating
a platform"; VQ-85): list the VMs to move and baseline each one's virtual hardware from the
platform; what it cannot: observe the guest (vcsim's VMs run no OS, have no disk contents and no
guest agent), so the baseline holds the VM part only (``guest`` null) and no application data.

Uses the session lab's simulated vCenter (the ``vcenter`` group of the lab inventory) and the
shipped conversion spec with its hardware test on the vSphere platform and without its guest
test: the inventory reaches vCenter from the controller (``ansible_connection: local``), so
a guest test there would observe the controller, not the VM (docs/conversion.md).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual

pytestmark = [pytest.mark.lab]

LAB_INV = REPO / "inventories" / "lab"
CHANGE = "CHG0008501"


def records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


def _vcenter() -> dict[str, Any]:
    children = yaml.safe_load((LAB_INV / "hosts.yml").read_text())["all"]["children"]
    if "vcenter" not in children:
        pytest.skip("the lab's vcsim component is not up")
    (values,) = children["vcenter"]["hosts"].values()
    return dict(values)


def _listed(vc: dict[str, Any]) -> list[str]:
    """The simulator's VMs, listed through the vSphere platform adapter (the inventory of
    what a migration moves)."""
    from vqual_lab import manager, vcsim

    from qualification.platforms.vsphere.adapter import VspherePlatform
    from qualification.platforms.vsphere.endpoint import Endpoint

    user, password = vcsim.read_credentials(manager.context(), vcsim.DEFAULT_VCENTER)
    platform = VspherePlatform(Endpoint(vc["vqual_vsphere_host"], user, password,
                                        port=vc["vqual_vsphere_port"], validate_certs=False))
    try:
        return sorted(v.name for v in platform.vms())
    finally:
        platform.close()


def test_vcsim_lists_the_vms_and_baselines_their_hardware_not_their_guest(
    lab: object, tmp_path: Path
) -> None:
    vc = _vcenter()
    names = _listed(vc)
    assert len(names) >= 2, names
    state = tmp_path / "state"
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    vm = names[0]
    spec = yaml.safe_load((COLLECTION / "specs" / "conversion.yaml").read_text())
    (hardware,) = [t for t in spec["tests"] if t["check"] == "vm_fingerprint"]
    hardware["params"]["platform"] = "vsphere"
    spec["tests"] = [hardware]
    spec["data_files"] = {}
    spec.pop("requirements_file", None)
    spec_path = tmp_path / "conversion-vsphere.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"app-vm": {
        **{k: v for k, v in vc.items() if k != "vqual_target_kinds"},
        "vqual_target_kinds": ["clone"], "vqual_vsphere_vm": vm}}}}))
    done = run_vqual("convert", "baseline", "-i", str(inventory), "--limit", "app-vm",
                     "-s", str(spec_path), "-c", CHANGE,
                     "--evidence-dir", str(tmp_path / "evidence"), "--json", state_dir=state)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    recs = records(Path(out["bundle"]))
    results = {r["data"]["test_id"]: r["data"]["verdict"] for r in recs
               if r["kind"] == "check.result"}
    assert results == {"IQ-CONV-FP-002": "pass"}  # the hardware, from the platform
    (fingerprint,) = [r["data"] for r in recs if r["kind"] == "fingerprint"]
    assert fingerprint["guest"] is None and fingerprint["vm"]["vcpus"] >= 1
    assert fingerprint["vm"]["disks"] and fingerprint["vm"]["nics"]
    assert fingerprint["identity"]["name"] == vm
    assert run_vqual("verify", out["bundle"], state_dir=state).returncode == 0
