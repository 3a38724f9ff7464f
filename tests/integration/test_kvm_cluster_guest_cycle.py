"""KVM OQ on one throwaway guest through `vqual qualify` on the lab: clone from the template,
power cycle, snapshot with memory, maintenance round trip (OQ-KVM-004 to -007); and the
per-spec playbook `playbooks/kvm_cluster.yml` run by `vqual qualify --playbook`.

The maintenance round trip evacuates only the run's own throwaway guest, so the source host
must carry no other guest: the lab's clone1 runs on kvm1, so the test moves the lab guests on
kvm1 to kvm2 with the lab's own helper first (which keeps their SSH forwards) and back
afterwards, as an operator would drain a host before its OQ. With clone1 left on kvm1 the
same test is not-executed, naming clone1 (test_kvm_cluster.py shows that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import COLLECTION, REPO, run_vqual
from tests.integration.test_kvm_cluster import (
    _records,
    lab_throwaways,
    site_inventory,
    wait_for_guest_slot,
)

pytestmark = pytest.mark.lab

SPEC = COLLECTION / "specs" / "kvm-cluster.yaml"
CYCLE_TESTS = ("OQ-KVM-004", "OQ-KVM-005", "OQ-KVM-006", "OQ-KVM-007")


@pytest.fixture
def kvm_site_inventory(tmp_path: Path, lab: object) -> Path:
    return site_inventory(tmp_path)


@pytest.fixture
def kvm1_drained(lab: object) -> Iterator[None]:
    """No lab guest runs on kvm1 during the test (they run on kvm2), and each is back where
    it was afterwards (another test may have left a clone on the other host)."""
    from vqual_lab import guests

    wait_for_guest_slot()
    before = guests.running_guests()
    moved = sorted(n for n, host in before.items() if host == "kvm1")
    assert all(n in ("clone1", "clone2") for n in moved), before  # nothing else to move
    for name in moved:
        guests.migrate_guest(name, "kvm1", "kvm2")
    try:
        yield
    finally:
        for name in moved:
            if guests.running_guests().get(name) == "kvm2":
                guests.migrate_guest(name, "kvm2", "kvm1")
        after = guests.running_guests()
        assert {n: after.get(n) for n in before} == before


def _run(inventory: Path, state: Path, evidence: Path, *args: str) -> tuple[dict[str, Any],
                                                                           list[dict[str, Any]]]:
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", "CHG0000502",
                     "--evidence-dir", str(evidence), "--json", *args,
                     state_dir=state, timeout=1200)
    assert done.returncode in (0, 1, 4), done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["verification"] == "valid", summary
    verify = run_vqual("verify", summary["bundle"], state_dir=state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    return summary, _records(Path(summary["bundle"]))


def test_guest_cycle_clone_power_snapshot_and_maintenance_on_the_lab(
    executor_state: Path, kvm_site_inventory: Path, tmp_path: Path, kvm1_drained: None
) -> None:
    args = [a for t in CYCLE_TESTS for a in ("--test", t)]
    summary, records = _run(kvm_site_inventory, executor_state, tmp_path / "ev",
                            "--limit", "kvm1", *args)
    results = {r["data"]["test_id"]: r["data"] for r in records if r["kind"] == "check.result"}
    assert summary["exit_code"] == 0, {t: (r["verdict"], r["reason"]) for t, r in results.items()}
    assert {t: results[t]["verdict"] for t in CYCLE_TESTS} == dict.fromkeys(CYCLE_TESTS, "pass")
    actions = [r["data"] for r in records if r["kind"] == "action"]
    names = [a["name"] for a in actions]
    # One guest, every step in order, each with state before and after from the platform.
    assert names == [
        "vm.clone", "vm.start", "vm.shutdown_graceful", "vm.start",
        "guest.marker_write", "vm.snapshot_create", "guest.marker_change",
        "vm.snapshot_revert", "guest.marker_read", "vm.snapshot_delete",
        "vm.evacuate", "host.enter_maintenance", "vm.migrate_onto_maintenance_host",
        "vm.start_on_maintenance_host", "host.exit_maintenance", "vm.migrate_back",
        "vm.power_off_hard", "vm.cleanup",
    ], names
    assert all(a["verdict"] == "pass" for a in actions), [a for a in actions
                                                          if a["verdict"] != "pass"]
    step = {a["name"]: a for a in actions}
    clone = step["vm.clone"]
    assert clone["before"]["template"] == "master"
    assert clone["after"]["uuid"] != clone["before"]["template_uuid"]
    assert not set(clone["after"]["macs"]) & set(clone["before"]["template_macs"])
    assert clone["after"]["backing"] == clone["before"]["template_disk"]
    starts = [a for a in actions if a["name"] == "vm.start"]
    assert starts[0]["after"]["boot_id"] != starts[1]["after"]["boot_id"]
    assert step["vm.shutdown_graceful"]["after"]["power_state"] == "stopped"
    assert step["vm.snapshot_create"]["after"]["memory"] == "internal"
    written = next(a for a in actions if a["name"] == "guest.marker_write")["after"]["marker"]
    assert step["guest.marker_change"]["after"]["marker"] != written
    assert step["guest.marker_read"]["after"]["marker"] == written
    assert step["vm.snapshot_revert"]["after"]["boot_id"] == starts[1]["after"]["boot_id"]
    assert step["vm.evacuate"]["after"]["host"] == "kvm2"
    assert step["host.enter_maintenance"]["after"]["in_maintenance"] is True
    refused = step["vm.migrate_onto_maintenance_host"]["after"]
    assert refused["refused"] and "maintenance" in refused["reason"]
    assert refused["on_host"] == "absent" and refused["on_destination"] == "running"
    assert step["vm.start_on_maintenance_host"]["after"]["power_state"] == "stopped"
    assert step["host.exit_maintenance"]["after"] == {"in_maintenance": False,
                                                     "marker_exists": False}
    assert step["vm.migrate_back"]["after"]["host"] == "kvm1"
    # Nothing of the run is left: no guest, no maintenance marker.
    assert not [n for n in lab_throwaways() if summary["run_id"] in n]
    markers = executor_state / "platforms" / "libvirt" / "maintenance"
    assert not [m for m in markers.glob("*.json") if summary["run_id"] in m.read_text()]


def test_the_kvm_cluster_playbook_runs_through_vqual_qualify(
    executor_state: Path, kvm_site_inventory: Path, tmp_path: Path
) -> None:
    iq = ("IQ-KVM-001", "IQ-KVM-002", "IQ-KVM-007")
    summary, records = _run(kvm_site_inventory, executor_state, tmp_path / "ev",
                            "--playbook", "kvm_cluster.yml",
                            *[a for t in iq for a in ("--test", t)])
    results = {(r["data"]["target"], r["data"]["test_id"]): r["data"]["verdict"]
               for r in records if r["kind"] == "check.result"}
    # No --limit: the playbook's own host group (kvm_hosts) is what ran, nothing else.
    assert {t for t, _ in results} == {"kvm1", "kvm2"}
    assert {i for _, i in results} == set(iq)
    assert all(v == "pass" for v in results.values()), results
    assert summary["exit_code"] == 0
