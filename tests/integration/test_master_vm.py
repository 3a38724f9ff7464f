"""The lab's Master-VM qualified with specs/master-vm.yaml, then drift of clone1 from it.

The master's template disk stays untouched: the master boots its own domain (its name, UUID,
virtual hardware) on a throwaway qcow2 overlay of the template disk, like a clone, so the
template stays generalised, the running clones keep their backing file unchanged, and the
template's generalisation and disk digest are read offline from the disk itself
(``template_fingerprint``, debugfs -c). docs/master-vm.md says why this replaces taking the
clones down. Runs under the lab lock; the overlay boot is undone afterwards.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual
from tests.integration.test_drift import (  # noqa: F401 (changed_clone1 is a fixture)
    LAB_INV,
    bundle_of,
    changed_clone1,
    drift,
    expected_differences,
    records,
)

pytestmark = [pytest.mark.lab]

OVERLAY = "master-qualification.qcow2"


def overlay_xml(xml: str, inside_dir: str) -> str:
    """The master's domain XML with its disk on the throwaway overlay (qcow2)."""
    master_disk = f"{inside_dir}/master.img"
    assert master_disk in xml, "the master's disk is not the published template"
    xml = xml.replace(master_disk, f"{inside_dir}/{OVERLAY}")
    xml, count = re.subn(r"(<driver name=['\"]qemu['\"] type=['\"])raw(['\"])", r"\1qcow2\2", xml)
    assert count == 1, "expected one raw disk driver in the master's XML"
    return xml


@pytest.fixture(scope="module")
def booted_master(lab: object) -> Iterator[dict[str, Any]]:
    import libvirt

    from vqual_lab import guests, manager
    from vqual_lab.component import file_lock

    ctx = manager.context()
    state = ctx.state().get("guests") or {}
    assert "files" in state, "the guests component is not up"
    outer = Path(state["files"])
    inside = f"{guests._kvm().SHARED_MOUNT}/{guests.GUESTS_SUBDIR}/{outer.name}"
    spec = next(g for g in guests.VM_BUDGET.guests if g.role == "master")
    uri = guests.lab_hosts()[spec.host]
    template = outer / "master.img"
    before = template.stat().st_mtime_ns
    overlay = guests.make_overlay(Path("master.img"), outer / OVERLAY)
    serial = outer / f"{spec.name}.serial.log"
    offset = serial.stat().st_size if serial.exists() else 0
    conn = guests._open(uri)
    dom = None
    try:
        xml = conn.lookupByName(spec.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        with file_lock(ctx.lab_dir / "run" / "guests-budget.lock"):
            # The template is not written (the overlay takes every write), so the clones
            # may keep running; the count of running guests still holds.
            guests.check_budget(spec.name, list(guests.running_guests()))
            dom = conn.createXML(overlay_xml(xml, inside), 0)
        guests.wait_ready(serial, offset=offset, timeout=600, alive=lambda: bool(dom.isActive()))
        yield {"template": template, "spec": spec, "uri": uri}
    finally:
        if dom is not None:
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
        conn.close()
        overlay.unlink(missing_ok=True)
        # The template disk was only read.
        assert template.stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def master_bundle(booted_master: dict[str, Any], executor_state: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("master")
    hosts = yaml.safe_load((LAB_INV / "hosts.yml").read_text())
    group = hosts["all"]["children"]["master_vm"]
    group["hosts"]["master"]["vqual_template_image"] = str(booted_master["template"])
    inventory = work / "master.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"master_vm": group}}}))
    t0 = time.monotonic()
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(COLLECTION / "specs" / "master-vm.yaml"),
                     "-c", "CHG0000301", "--evidence-dir", str(work / "evidence"),
                     state_dir=executor_state)
    print(f"master qualification: {time.monotonic() - t0:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    return bundle_of(done.stdout)


def test_master_is_qualified_with_a_generalised_template_and_a_fingerprint(
    master_bundle: Path,
) -> None:
    recs = records(master_bundle)
    results = {r["data"]["test_id"]: r["data"] for r in recs if r["kind"] == "check.result"}
    from qualification.spec.loader import load_spec

    spec = load_spec(COLLECTION / "specs" / "master-vm.yaml")
    planned = {t.id for t in spec.tests if t.applies(("master_vm",), "high")}
    assert set(results) == planned and len(planned) >= 24
    assert {r["verdict"] for r in results.values()} == {"pass"}
    assert results["IQ-MVM-GEN-001"]["observed"] is True
    assert results["IQ-MVM-VM-001"]["observed"] == 1
    fps = [r["data"] for r in recs if r["kind"] == "fingerprint"]
    assert len(fps) == 1
    fp = fps[0]
    assert fp["subject"] == "master" and fp["kind"] == "vm"
    assert fp["generalised"]["machine_id_empty"] is True and fp["generalised"]["ssh_host_keys"] == []
    assert re.fullmatch(r"[0-9a-f]{64}", fp["digests"]["disk"])
    assert fp["guest"]["packages"]["openssh-server"]
    assert "/etc/ssh/sshd_config" in fp["guest"]["files"]
    # OpenSSH prints prohibit-password under its older name.
    assert fp["guest"]["security"]["sshd.permitrootlogin"] in ("prohibit-password", "without-password")
    assert fp["vm"]["vcpus"] == 1 and fp["vm"]["memory_mib"] == 384
    # The booted master has an identity of its own; the template has none.
    assert fp["identity"]["name"] == "master" and fp["identity"]["machine_id"]
    start = next(r["data"] for r in recs if r["kind"] == "run.start")
    assert start["spec"]["name"] == "master-vm"


def test_drift_of_a_changed_clone1_from_the_master_names_exactly_the_changes(
    master_bundle: Path, executor_state: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    evidence = tmp_path / "evidence"
    request.getfixturevalue("changed_clone1")
    code, payload, err = drift(executor_state, master_bundle, LAB_INV, evidence, "CHG0000302",
                               "--limit", "clone1")
    assert code == 1, err
    found = sorted((d["target"], d["what"], d["where"]) for d in payload["differences"])
    assert found == expected_differences("clone1")
    # The hostname differs (clone1 vs master) and is an identity field: not reported.
    assert "hostname" not in json.dumps(payload["differences"])
    assert payload["verification"] == "valid"
