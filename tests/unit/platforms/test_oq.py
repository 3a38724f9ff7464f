"""The OQ lifecycle on a throwaway domain, run on the real test driver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from qualification.errors import NotSupported
from qualification.platforms.base import SnapshotFacts
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.checks.vocabulary import LIFECYCLE_STEPS
from qualification.platforms.oq import SNAPSHOT_NAME, plan_steps, run_lifecycle

URI = "test:///default"
STAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


@pytest.fixture
def lv(tmp_path: Path) -> Iterator[LibvirtPlatform]:
    with LibvirtPlatform(URI, state_dir=tmp_path) as platform:
        yield platform


@pytest.mark.parametrize(
    ("asked", "planned"),
    [
        (["define"], ("define",)),
        (["start"], ("define", "start")),
        (["stop"], ("define", "start", "stop")),
        (["snapshot_revert"], ("define", "start", "snapshot_create", "stop", "snapshot_revert")),
        (["undefine", "define"], ("define", "undefine")),
        (list(LIFECYCLE_STEPS), LIFECYCLE_STEPS),
    ],
)
def test_plan_adds_needed_steps_in_order(asked: list[str], planned: tuple[str, ...]) -> None:
    assert plan_steps(asked) == planned


def test_plan_refuses_unknown_step() -> None:
    with pytest.raises(ValueError, match="unknown OQ step 'reboot'"):
        plan_steps(["reboot"])


def test_full_lifecycle_passes_and_leaves_nothing(lv: LibvirtPlatform) -> None:
    before = [v.name for v in lv.vms()]
    result = run_lifecycle(lv, "vqual-oq-t1")
    assert result.value["passed"] is True
    assert list(result.value["steps"]) == list(LIFECYCLE_STEPS)
    assert all(s["verdict"] == "pass" for s in result.value["steps"].values())
    assert [a["name"] for a in result.actions] == [f"vm.{s}" for s in LIFECYCLE_STEPS]
    assert [v.name for v in lv.vms()] == before


def test_actions_show_state_before_and_after(lv: LibvirtPlatform) -> None:
    actions = {a["name"]: a for a in run_lifecycle(lv, "vqual-oq-t2").actions}
    assert actions["vm.define"]["before"] == {"exists": False}
    assert actions["vm.define"]["after"]["power_state"] == "stopped"
    revert = actions["vm.snapshot_revert"]
    assert revert["before"]["power_state"] == "stopped"
    assert revert["after"]["power_state"] == "running"  # the snapshot's state is back
    assert SNAPSHOT_NAME in actions["vm.snapshot_create"]["after"]["snapshots"]
    assert SNAPSHOT_NAME not in actions["vm.snapshot_delete"]["after"]["snapshots"]
    assert actions["vm.undefine"]["after"] == {"exists": False}
    for action in actions.values():
        assert action["target"] == "vqual-oq-t2"
        assert action["started"] <= action["finished"]
        assert set(action) == {
            "name",
            "target",
            "before",
            "after",
            "verdict",
            "reason",
            "started",
            "finished",
        }
        assert re.match(STAMP, action["started"])


def test_only_asked_steps_and_their_needs_run_then_cleanup(lv: LibvirtPlatform) -> None:
    result = run_lifecycle(lv, "vqual-oq-t3", ["start"])
    assert list(result.value["steps"]) == ["define", "start"]
    assert [a["name"] for a in result.actions] == ["vm.define", "vm.start", "vm.cleanup"]
    assert result.actions[-1]["after"] == {"exists": False}
    assert not lv.vm_exists("vqual-oq-t3")


def test_refused_step_blocks_only_the_steps_that_need_it(lv: LibvirtPlatform) -> None:
    # A host in maintenance refuses to start VMs: a real refusal, not a simulated one.
    lv.power_off("test")
    lv.enter_maintenance()
    result = run_lifecycle(lv, "vqual-oq-t4")
    steps = result.value["steps"]
    assert steps["define"]["verdict"] == "pass"
    assert steps["start"]["verdict"] == "fail"
    assert "is in maintenance mode" in steps["start"]["reason"]
    needs_start = ("snapshot_create", "stop", "snapshot_revert", "snapshot_delete")
    assert {steps[s]["verdict"] for s in needs_start} == {"not-executed"}
    assert steps["stop"]["reason"] == "step start did not pass"
    assert steps["undefine"]["verdict"] == "pass"  # needs only define
    assert result.value["passed"] is False
    assert [a["name"] for a in result.actions] == ["vm.define", "vm.start", "vm.undefine"]
    assert not lv.vm_exists("vqual-oq-t4")


def test_failure_midway_still_cleans_up(lv: LibvirtPlatform) -> None:
    lv.power_off("test")
    lv.enter_maintenance()
    result = run_lifecycle(lv, "vqual-oq-t7", ["start"])
    assert [a["name"] for a in result.actions] == ["vm.define", "vm.start", "vm.cleanup"]
    assert result.actions[-1]["verdict"] == "pass"
    assert not lv.vm_exists("vqual-oq-t7")


def test_throwaway_disk_is_made_in_a_pool_and_removed(lv: LibvirtPlatform) -> None:
    pool = lv.conn.storagePoolLookupByName("default-pool")
    result = run_lifecycle(lv, "vqual-oq-t8", disk_mib=4)
    define = result.actions[0]
    assert define["after"]["disks"] == ["/default-pool/vqual-oq-t8-vda.qcow2"]
    assert result.value["passed"] is True
    assert [v.name() for v in pool.listAllVolumes()] == []


def test_without_disk_the_lifecycle_still_runs(lv: LibvirtPlatform) -> None:
    result = run_lifecycle(lv, "vqual-oq-t9", disk_mib=0)
    assert result.actions[0]["after"]["disks"] == []
    assert result.value["passed"] is True  # the test driver snapshots diskless domains


def test_existing_domain_is_never_touched(lv: LibvirtPlatform) -> None:
    result = run_lifecycle(lv, "test")
    assert result.value["steps"]["define"]["verdict"] == "fail"
    assert "already exists" in result.value["steps"]["define"]["reason"]
    assert [a["name"] for a in result.actions] == ["vm.define"]  # no cleanup of "test"
    assert lv.vm("test").power_state == "running"


class NoSnapshots(LibvirtPlatform):
    """A libvirt platform whose driver has no snapshots (as some storage back ends)."""

    def snapshot_create(self, vm: str, name: str, *, description: str = "") -> SnapshotFacts:
        raise NotSupported(f"create snapshot of {vm}", "this driver has no snapshots")


def test_step_the_platform_cannot_do_is_not_executed(tmp_path: Path) -> None:
    with NoSnapshots(URI, state_dir=tmp_path) as platform:
        result = run_lifecycle(platform, "vqual-oq-t5")
        steps = result.value["steps"]
        assert steps["snapshot_create"]["verdict"] == "not-executed"
        assert "this driver has no snapshots" in steps["snapshot_create"]["reason"]
        assert steps["start"]["verdict"] == "pass"
        assert not platform.vm_exists("vqual-oq-t5")


def test_graceful_stop(lv: LibvirtPlatform) -> None:
    result = run_lifecycle(lv, "vqual-oq-t6", ["stop"], graceful_stop=True)
    assert result.value["steps"]["stop"]["verdict"] == "pass"
