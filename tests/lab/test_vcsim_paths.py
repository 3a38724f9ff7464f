"""vSphere redundant paths (URS-CL-03, VQ-87) on the lab's vCenter simulator: uplinks per
standard vSwitch and paths per datastore, from the platform plug-in's ``paths`` method, judged
by ``vqual qualify`` with the shipped ``redundant-paths`` spec. Read-only.

What the simulator (govmomi's vcsim) shows, and so what this can show (docs/vsphere.md):
every host has one standard vSwitch, ``vSwitch0``, with one uplink (``vmnic0``, active, no
standby; ``vmnic1`` exists but is on no vSwitch), so a site minimum of two uplinks fails
naming every host's vSwitch0 and a minimum of one passes; every physical NIC has a link. Each
host's two SCSI LUNs (local disk and CD-ROM) have one active path each, but the only datastore
(``LocalDS_0``) is a local directory backed by no LUN, so the datastore path tests are
not-executed saying so. The simulator cannot set uplinks (``AddVirtualSwitch`` stores the name
only; ``UpdateVirtualSwitch`` is not implemented) nor fail a path or a link.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_vqual

pytestmark = pytest.mark.lab

SPEC = REPO / "ansible_collections" / "vqual" / "qualification" / "specs" / "redundant-paths.yaml"
TARGET = "vcsim-vc"


def _results(bundle: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            out[record["data"]["test_id"]] = record["data"]
    return out


def _qualify(tmp: Path, state: Path, min_uplinks: int) -> dict[str, dict[str, Any]]:
    from vqual_lab import manager

    inventory = tmp / "inventory"
    shutil.copytree(manager.inventory_dir(manager.context()), inventory)
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / f"{TARGET}.yml").write_text(yaml.safe_dump({"vqual_expected": {
        "vsphere_min_uplinks": {"min": min_uplinks},
        "vsphere_min_datastore_paths": {"min": 2}}}))
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", "CHG0008701",
                     "--limit", TARGET, "--evidence-dir", str(tmp / "evidence"), "--json",
                     state_dir=state)
    assert done.stdout.strip().startswith("{"), done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid" and summary["unreachable"] == [], summary
    return _results(Path(summary["bundle"]))


def test_one_uplink_per_vswitch_fails_a_minimum_of_two_naming_each_vswitch(
    lab: object, executor_state: Path, tmp_path: Path
) -> None:
    results = _qualify(tmp_path, executor_state, min_uplinks=2)
    assert set(results) == {"IQ-RP-011", "IQ-RP-012", "IQ-RP-013", "IQ-RP-014"}
    uplinks = results["IQ-RP-011"]
    assert uplinks["verdict"] == "fail" and uplinks["observed"] == 1
    switches = uplinks["measured"]
    assert len(switches) >= 4 and all(k.endswith("/vSwitch0") for k in switches)
    assert all(s == {"uplinks": ["vmnic0"], "active": ["vmnic0"], "standby": [],
                     "links_down": []} for s in switches.values())
    assert "DC0_C0_H0/vSwitch0 (vmnic0)" in uplinks["reason"]
    assert results["IQ-RP-012"]["verdict"] == "pass" and results["IQ-RP-012"]["observed"] == []
    for test in ("IQ-RP-013", "IQ-RP-014"):
        assert results[test]["verdict"] == "not-executed", results[test]
        assert "no datastore in scope is backed by a SCSI LUN" in results[test]["reason"]
        assert "LocalDS_0: OTHER" in results[test]["reason"]


def test_a_minimum_of_one_uplink_passes(
    lab: object, executor_state: Path, tmp_path: Path
) -> None:
    results = _qualify(tmp_path, executor_state, min_uplinks=1)
    assert results["IQ-RP-011"]["verdict"] == "pass" and results["IQ-RP-011"]["observed"] == 1
