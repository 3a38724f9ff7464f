"""LibvirtPlatform on the lab's KVM hosts: real libvirtd and QEMU (TCG), host to host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from vqual_lab.kvm import hosts_from_env
from qualification.platforms.libvirt import LibvirtPlatform, probe

pytestmark = pytest.mark.lab

HOSTS = [h.address for h in hosts_from_env()]
URI1 = f"qemu+tcp://{HOSTS[0]}/system"
URI2 = f"qemu+tcp://{HOSTS[1]}/system"
POOL = "vqual-test-oq"


@pytest.fixture
def pool(lab: object) -> Iterator[str]:
    """A directory pool on the first host for the throwaway disk, removed afterwards.

    Asks for ``lab`` so that without the lab the test is skipped before this connects.
    """
    conn = libvirt.open(URI1)
    made = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{POOL}</name>"
        "<target><path>/var/lib/libvirt/images</path></target></pool>",
        0,
    )
    made.create(0)
    try:
        yield POOL
    finally:
        made.destroy()
        made.undefine()
        conn.close()


def test_facts_of_a_qemu_host(tmp_path: Path) -> None:
    with LibvirtPlatform(URI1, state_dir=tmp_path) as lv:
        about = lv.about()
        host = lv.host()
    assert about.product == "QEMU"
    assert host.uuid  # each lab host has its own host_uuid
    assert host.firmware == {}  # no SMBIOS inside the lab's chroot hosts


def test_full_lifecycle_on_qemu_with_a_qcow2_disk(tmp_path: Path, pool: str) -> None:
    requests = [{"key": "oq", "method": "oq_lifecycle", "args": {"pool": pool}}]
    observations, changed = probe(
        URI1, requests, run_id="lab-oq", state_dir=tmp_path, domain_type="qemu"
    )
    value = observations["oq"]["value"]
    assert changed and value["passed"] is True, value
    assert observations["oq"]["actions"][0]["after"]["disks"] == [
        "/var/lib/libvirt/images/vqual-oq-lab-oq-vda.qcow2"
    ]
    assert libvirt.open(URI1).storagePoolLookupByName(pool).listVolumes() == []


def test_without_a_pool_only_the_snapshot_steps_fail(tmp_path: Path) -> None:
    requests = [{"key": "oq", "method": "oq_lifecycle", "args": {}}]
    observations, _ = probe(
        URI1, requests, run_id="lab-nodisk", state_dir=tmp_path, domain_type="qemu"
    )
    steps = observations["oq"]["value"]["steps"]
    assert steps["snapshot_create"]["verdict"] == "fail"
    assert "require all disks" in steps["snapshot_create"]["reason"]
    assert {steps[s]["verdict"] for s in ("define", "start", "stop", "undefine")} == {"pass"}
    assert steps["snapshot_revert"]["verdict"] == "not-executed"


def test_live_migration_host_to_host(tmp_path: Path) -> None:
    requests = [{"key": "m", "method": "oq_migrate", "args": {"destination": URI2}}]
    observations, _ = probe(
        URI1, requests, run_id="lab-mig", state_dir=tmp_path, domain_type="qemu"
    )
    value = observations["m"]["value"]
    assert value["verdict"] == "pass", value
    migrate = observations["m"]["actions"][1]
    assert migrate["after"]["power_state"] == "running"
    assert migrate["before"]["host"] != migrate["after"]["host"]
    assert value["cleanup"]["verdict"] == "pass"


def test_migration_onto_a_host_in_maintenance_is_refused(tmp_path: Path) -> None:
    # The lab's clone2 runs on kvm2, so enter_maintenance (rightly) refuses; write vqual's
    # maintenance marker as enter_maintenance would after an evacuation, to test that a
    # migration honours it.
    with LibvirtPlatform(URI2, state_dir=tmp_path) as destination:
        marker = destination.maintenance_marker()
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text('{"host": "kvm2", "since": "2026-01-01T00:00:00.000000Z"}\n')
    try:
        requests = [{"key": "m", "method": "oq_migrate", "args": {"destination": URI2}}]
        observations, _ = probe(
            URI1, requests, run_id="lab-maint", state_dir=tmp_path, domain_type="qemu"
        )
    finally:
        with LibvirtPlatform(URI2, state_dir=tmp_path) as destination:
            destination.exit_maintenance()
    value = observations["m"]["value"]
    assert value["verdict"] == "fail" and "is in maintenance mode" in value["reason"]
    with LibvirtPlatform(URI1) as source:
        assert not source.vm_exists("vqual-oq-lab-maint")
