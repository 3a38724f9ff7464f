"""inventory.snapshot() on libvirt's in-process test driver (test:///default): hosts, VMs,
placement (pinning by name or UUID), maintenance, the optional adapter calls, and the planner
on what it reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualification.errors import PlatformError
from qualification.platforms.base import Placement, VmFacts, VmSummary
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.rollout.change import ChangeTarget, ChangeWindow, RolloutChange
from qualification.rollout.inventory import _vm_state, describe, snapshot
from qualification.rollout.model import ClusterSnapshot
from qualification.rollout.planner import plan_rollout

TEST_URI = "test:///default"


def change(cluster: str = "lab", groups: tuple[tuple[str, ...], ...] = ()) -> RolloutChange:
    return RolloutChange(
        change_id="CHG0000001",
        title="t",
        risk="low",
        cluster=cluster,
        target=ChangeTarget(packages={"agent": "1.1"}),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        digest="ab" * 32,
        path=Path("change.yaml"),
        anti_affinity=groups,
    )


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[LibvirtPlatform]:
    # The test driver keeps its state only while a connection is open: one per test.
    with LibvirtPlatform(TEST_URI, state_dir=tmp_path) as p:
        yield p


def test_snapshot_reads_the_host_and_its_vms(platform: LibvirtPlatform) -> None:
    facts = platform.host()
    snap = snapshot(platform, "lab")
    assert snap.cluster == "lab"
    (host,) = snap.hosts
    assert host.name == facts.name
    assert host.vcpus == facts.cpu.count and host.memory_mib == facts.memory_mib
    assert host.connected and not host.in_maintenance
    assert host.version == facts.software["hypervisor_version"]
    assert host.packages == {}
    (vm,) = snap.vms
    real = platform.vm("test")
    assert (vm.name, vm.host, vm.vcpus, vm.memory_mib) == (
        "test",
        facts.name,
        real.vcpus,
        real.memory_mib,
    )
    assert vm.powered_on and not vm.pinned and not vm.template and vm.allowed_hosts == ()
    assert snap.tasks_in_flight == () and snap.anti_affinity == ()
    # two reads of an unchanged platform give the same digest
    assert snapshot(platform, "lab").digest == snap.digest
    assert ClusterSnapshot.from_json(snap.to_json()) == snap


def test_cluster_name_comes_from_the_change_when_not_given(platform: LibvirtPlatform) -> None:
    assert snapshot(platform, None, change("from-change")).cluster == "from-change"
    assert snapshot(platform, "given", change("from-change")).cluster == "given"


def test_placement_by_name_or_uuid_pins_the_vm(platform: LibvirtPlatform) -> None:
    facts = platform.host()
    platform.set_placement("test", Placement((facts.name,)))
    vm = snapshot(platform, "lab").vms[0]
    assert vm.pinned and vm.allowed_hosts == (facts.name,)
    platform.set_placement("test", Placement((facts.name, "other-host")))
    vm = snapshot(platform, "lab").vms[0]
    assert not vm.pinned and vm.allowed_hosts == ("other-host", facts.name)  # sorted


def test_maintenance_and_power_state_are_read(platform: LibvirtPlatform) -> None:
    platform.power_off("test")
    platform.enter_maintenance()
    snap = snapshot(platform, "lab")
    assert snap.hosts[0].in_maintenance
    assert not snap.vms[0].powered_on and not snap.vms[0].template
    assert describe(snap)["in_maintenance"] == [snap.hosts[0].name]
    platform.exit_maintenance()
    assert not snapshot(platform, "lab").hosts[0].in_maintenance


def test_installed_fills_the_host_packages(platform: LibvirtPlatform) -> None:
    seen: list[str] = []

    def installed(host: str) -> dict[str, str]:
        seen.append(host)
        return {"agent": "1.1", "libvirt-daemon": "9.0.0-4"}

    snap = snapshot(platform, "lab", installed=installed)
    assert seen == [platform.host().name]
    assert snap.hosts[0].packages == {"agent": "1.1", "libvirt-daemon": "9.0.0-4"}
    # at the change's target (agent 1.1): the planner skips the host
    plan = plan_rollout(snap, change())
    assert plan.order == () and "already at the target (agent 1.1)" in plan.skipped[0].reason


def test_placement_by_uuid_is_mapped_to_the_host_name(platform: LibvirtPlatform) -> None:
    # The test driver's host has no UUID; vSphere's have, and placements may name them.
    facts = dataclasses.replace(VmSummary.of(platform.vm("test")), placement=Placement(("uuid-1",)),
                                host="h1")
    vm = _vm_state(platform, facts, {"uuid-1": "h1", "uuid-2": "h2"})
    assert vm.pinned and vm.allowed_hosts == ("h1",)
    facts = dataclasses.replace(facts, placement=Placement(("uuid-2", "h1")))
    vm = _vm_state(platform, facts, {"uuid-1": "h1", "uuid-2": "h2"})
    assert not vm.pinned and vm.allowed_hosts == ("h1", "h2")


class _WithRules(LibvirtPlatform):
    """The test driver plus the optional calls an adapter may offer (rules, running tasks)."""

    def anti_affinity_rules(self) -> list[list[str]]:
        return [["web2", "web1"], ["solo"], ["web1", "web2"]]

    def tasks_in_flight(self) -> list[str]:
        return ["task-1 migrate db"]


def test_optional_adapter_calls_are_used(tmp_path: Path) -> None:
    with _WithRules(TEST_URI, state_dir=tmp_path) as p:
        snap = snapshot(p, "lab", change(groups=(("web1", "web2"), ("a", "b"))))
    # merged with the change's, deduplicated, sorted; a one-VM group is no rule
    assert snap.anti_affinity == (("a", "b"), ("web1", "web2"))
    assert snap.tasks_in_flight == ("task-1 migrate db",)
    assert "tasks still in flight: task-1 migrate db" in plan_rollout(snap, change()).problems[0]


class _WithTemplates(LibvirtPlatform):
    """The test driver plus a bulk template listing (one read instead of one per stopped VM)."""

    def templates(self) -> list[str]:
        return ["test"]


def test_bulk_template_listing_marks_templates(tmp_path: Path) -> None:
    with _WithTemplates(TEST_URI, state_dir=tmp_path) as p:
        p.power_off("test")
        vm = snapshot(p, "lab").vms[0]
    assert vm.template and not vm.powered_on
    with LibvirtPlatform(TEST_URI, state_dir=tmp_path) as plain:
        plain.power_off("test")
        assert not snapshot(plain, "lab").vms[0].template


class _Twice(LibvirtPlatform):
    """A platform that lists one VM twice (as a careless multi-host adapter could)."""

    def vms(self) -> list[VmFacts]:
        vm = super().vms()[0]
        return [vm, dataclasses.replace(vm, host=vm.host)]

    def vm_summaries(self) -> list[VmSummary]:
        vm = super().vm_summaries()[0]
        return [vm, dataclasses.replace(vm, host=vm.host)]


def test_a_vm_listed_twice_is_refused(tmp_path: Path) -> None:
    with (
        _Twice(TEST_URI, state_dir=tmp_path) as p,
        pytest.raises(PlatformError, match="vm test is listed twice"),
    ):
        snapshot(p, "lab")


def test_one_host_cannot_be_drained(platform: LibvirtPlatform) -> None:
    # libvirt gives one host per connection: its running VM has nowhere to go.
    plan = plan_rollout(snapshot(platform, "lab"), change())
    assert not plan.feasible
    assert plan.order[0].blocked == ("test",)
    assert (
        "vm test on host" in plan.problems[0] and "no other host is in service" in plan.problems[0]
    )


def test_unreachable_platform_is_a_platform_error(tmp_path: Path) -> None:
    with pytest.raises(PlatformError):
        LibvirtPlatform("test:///nonexistent/file.xml", state_dir=tmp_path)
