"""LibvirtPlatform on the lab's KVM hosts: real libvirtd and QEMU (TCG), host to host."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import libvirt_qemu
import pytest

from vqual_lab.kvm import hosts_from_env
from qualification.errors import PlatformError
from qualification.platforms.base import VmConfig
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.observations import probe

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


def _write_marker(uri: str, state_dir: Path) -> None:
    """vqual's maintenance marker for the host behind ``uri``, as enter_maintenance writes it.

    Written directly because the lab's clones run on both hosts (enter_maintenance rightly
    refuses while they do).
    """
    with LibvirtPlatform(uri, state_dir=state_dir) as host:
        marker = host.maintenance_marker()
        marker.parent.mkdir(parents=True, exist_ok=True)
        body = {"host": host.hostname(), "since": "2026-01-01T00:00:00.000000Z"}
        marker.write_text(json.dumps(body) + "\n")


def test_a_stopped_vm_moves_cold_onto_a_host_in_maintenance_and_back(tmp_path: Path) -> None:
    """A host in maintenance takes a stopped VM (as the rolling patch's OQ canary needs) and
    still powers nothing on; a running VM is refused, live or not, and stays where it was."""
    name = "vqual-test-cold"
    _write_marker(URI2, tmp_path)
    source = LibvirtPlatform(URI1, state_dir=tmp_path)
    destination = LibvirtPlatform(URI2, state_dir=tmp_path)
    try:
        assert destination.host().in_maintenance and not source.host().in_maintenance
        source.create_vm(VmConfig(name=name))  # diskless, defined, not started
        there = source.migrate_vm(name, URI2, live=False)
        assert (there.host, there.power_state) == ("kvm2", "stopped")
        assert destination.vm(name).host == "kvm2" and not source.vm_exists(name)
        with pytest.raises(PlatformError, match="power on .* is in maintenance mode"):
            destination.power_on(name)
        assert destination.vm(name).power_state == "stopped"
        back = destination.migrate_vm(name, URI1, live=False)
        assert (back.host, back.power_state) == ("kvm1", "stopped")
        assert not destination.vm_exists(name)

        assert source.power_on(name).power_state == "running"
        for live in (True, False):
            with pytest.raises(PlatformError, match="migrate .* is in maintenance mode"):
                source.migrate_vm(name, URI2, live=live)
            assert (source.vm(name).host, source.vm(name).power_state) == ("kvm1", "running")
            assert not destination.vm_exists(name)
    finally:
        destination.exit_maintenance()
        for platform in (source, destination):
            if platform.vm_exists(name):
                platform.power_off(name)
                platform.delete_vm(name)
            platform.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _agent_answers(dom: libvirt.virDomain) -> bool:
    reply = libvirt_qemu.qemuAgentCommand(dom, '{"execute": "guest-ping"}', 10, 0)
    return bool(json.loads(reply) == {"return": {}})


def test_the_lab_master_moves_cold_to_a_host_in_maintenance_and_home_clones_unharmed(
    tmp_path: Path,
) -> None:
    """The lab's Master-VM, the KVM change's OQ canary, makes RP-OQ-01's trip by hand.

    Its disk is the backing file of the running clones' qcow2 overlays: the cold moves carry
    only its definition, so the image stays byte for byte the same, and the clones keep
    running (same QEMU processes) and answering through their guest agents.
    """
    from vqual_lab import manager
    from vqual_lab.guests import VM_BUDGET

    master = VM_BUDGET.spec("master")
    assert master is not None and master.host == "kvm1"
    files = Path(manager.context().state()["guests"]["files"])
    uris = {"kvm1": URI1, "kvm2": URI2}
    clones = {s.name: s.host for s in VM_BUDGET.guests if s.role == "clone" and s.autostart}
    conns = {h: libvirt.open(u) for h, u in uris.items()}
    try:
        ids = {vm: conns[h].lookupByName(vm).ID() for vm, h in clones.items()}
        image = _sha256(files / "master.img")
        _write_marker(URI2, tmp_path)
        with LibvirtPlatform(URI1, state_dir=tmp_path) as home:
            assert home.vm("master").power_state == "stopped"
            t0 = time.monotonic()
            assert home.migrate_vm("master", URI2, live=False).host == "kvm2"
            with LibvirtPlatform(URI2, state_dir=tmp_path) as away:
                assert away.vm("master").power_state == "stopped" and not home.vm_exists("master")
                assert away.migrate_vm("master", URI1, live=False).host == "kvm1"
            seconds = time.monotonic() - t0
            assert home.vm("master").power_state == "stopped"
        assert _sha256(files / "master.img") == image
        for vm, host in clones.items():
            dom = conns[host].lookupByName(vm)
            assert dom.isActive() and dom.ID() == ids[vm], vm
            assert _agent_answers(dom), vm
            info = subprocess.run(
                ["qemu-img", "info", "-U", "--output=json", str(files / f"{vm}.qcow2")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            assert json.loads(info.stdout)["backing-filename"] == "master.img"
        print(f"master there and back (cold): {seconds:.2f} s")
    finally:
        with LibvirtPlatform(URI2, state_dir=tmp_path) as kvm2:
            kvm2.exit_maintenance()
            if kvm2.vm_exists("master"):  # a failed step left it away: home again
                kvm2.migrate_vm("master", URI1, live=False)
        for conn in conns.values():
            conn.close()
