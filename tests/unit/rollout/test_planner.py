"""The rollout planner: worked examples of each decision, then properties over generated
clusters checked by an independent replay of the plan."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualification.rollout.change import (
    ChangeTarget,
    ChangeWindow,
    HostExclusion,
    RolloutChange,
    StopApproval,
)
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import (
    HostPlan,
    Move,
    RolloutPlan,
    host_capacity,
    natural_key,
    plan_rollout,
    render_plan,
)

TARGET_BUILD = "2000"


def change(**overrides: object) -> RolloutChange:
    base = RolloutChange(
        change_id="CHG0000001",
        title="test",
        risk="high",
        cluster="c1",
        target=ChangeTarget(hypervisor_build=TARGET_BUILD),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        digest="ab" * 32,
        path=Path("change.yaml"),
        headroom=0.0,
        vcpu_ratio=1.0,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def host(name: str, vcpus: int = 8, mem: int = 8192, **kw: object) -> HostState:
    fields: dict[str, object] = {
        "connected": True,
        "in_maintenance": False,
        "version": "8.0",
        "build": "1000",
    }
    fields.update(kw)
    return HostState(name, vcpus, mem, **fields)  # type: ignore[arg-type]


def vm(name: str, on: str, vcpus: int = 1, mem: int = 1024, **kw: object) -> VmState:
    fields: dict[str, object] = {"powered_on": True}
    fields.update(kw)
    return VmState(name, on, vcpus, mem, **fields)  # type: ignore[arg-type]


def snap(hosts: list[HostState], vms: list[VmState], **kw: object) -> ClusterSnapshot:
    return ClusterSnapshot("c1", tuple(hosts), tuple(vms), **kw)  # type: ignore[arg-type]


# -- worked examples ---------------------------------------------------------------------------


def test_hosts_in_natural_order_and_each_vm_moves_off_its_host() -> None:
    s = snap(
        [host("h10"), host("h2"), host("h1")],
        [vm("a", "h1"), vm("b", "h2"), vm("c", "h10")],
    )
    plan = plan_rollout(s, change())
    assert plan.feasible, plan.problems
    assert [p.host for p in plan.order] == ["h1", "h2", "h10"]
    first = plan.host_plan("h1")
    assert [m.vm for m in first.moves] == ["a"]
    assert first.moves[0].destination != "h1"
    for hp in plan.order:
        assert all(m.destination != hp.host for m in hp.moves)
    assert plan.skipped == ()
    assert plan.change_digest == "ab" * 32
    assert plan.snapshot_digest == s.digest


def test_patched_hosts_are_preferred_so_a_vm_moves_once() -> None:
    # h1 is drained first; its VM must go to h2 or h3 (nothing patched yet). When h2 is
    # drained, h1 is patched and has room, so b goes there rather than to h3.
    s = snap([host("h1"), host("h2"), host("h3")], [vm("a", "h1"), vm("b", "h2")])
    plan = plan_rollout(s, change())
    assert plan.host_plan("h2").moves == (Move("b", "h1"),)


def test_destination_spreads_by_free_memory_share() -> None:
    s = snap(
        [host("h1"), host("h2", mem=4096), host("h3", mem=16384)],
        [vm("a", "h1", mem=2048)],
    )
    assert plan_rollout(s, change()).host_plan("h1").moves == (Move("a", "h3"),)


def test_capacity_shortfall_names_vm_host_and_room() -> None:
    s = snap(
        [host("h1"), host("h2", mem=4096)],
        [vm("big", "h1", vcpus=2, mem=6000), vm("x", "h2", mem=1024)],
    )
    plan = plan_rollout(s, change())
    assert not plan.feasible
    (problem,) = plan.problems
    assert "vm big on host h1 is blocking: capacity shortfall" in problem
    assert "2 vCPU and 6000 MiB" in problem and "h2" in problem
    assert plan.host_plan("h1").blocked == ("big",)


def test_headroom_and_vcpu_ratio_bound_each_destination() -> None:
    # h2 has 4 CPUs and 4096 MiB. A 3 vCPU / 3500 MiB VM fits with no headroom, not with 20 %.
    s = snap([host("h1"), host("h2", vcpus=4, mem=4096)], [vm("a", "h1", vcpus=3, mem=3500)])
    assert plan_rollout(s, change(headroom=0.0)).feasible
    tight = plan_rollout(s, change(headroom=0.2))
    assert not tight.feasible and "20% headroom" in tight.problems[0]
    # vCPUs: 6 vCPUs on 4 CPUs need an overcommit ratio of at least 1.5
    s6 = snap([host("h1"), host("h2", vcpus=4)], [vm("a", "h1", vcpus=6)])
    assert not plan_rollout(s6, change(vcpu_ratio=1.0)).feasible
    assert plan_rollout(s6, change(vcpu_ratio=1.5)).feasible
    cap_cpu, cap_mem = host_capacity(
        host("x", vcpus=4, mem=1000), change(headroom=0.1, vcpu_ratio=4.0)
    )
    assert cap_cpu == pytest.approx(14.4) and cap_mem == pytest.approx(900.0)


def test_pinned_vm_blocks_unless_approved_to_stop() -> None:
    hosts = [host("h1"), host("h2")]
    pinned = vm("db", "h1", allowed_hosts=("h1",), pinned=True)
    plan = plan_rollout(snap(hosts, [pinned]), change())
    assert plan.host_plan("h1").blocked == ("db",)
    assert "vm db on host h1 is blocking: it is pinned to its host" in plan.problems[0]
    approved = change(stop_approved=(StopApproval("db", 900),))
    ok = plan_rollout(snap(hosts, [pinned]), approved)
    assert ok.feasible
    assert ok.host_plan("h1").stops == ("db",) and ok.host_plan("h1").moves == ()


def test_approved_vm_that_can_move_is_moved_not_stopped() -> None:
    s = snap([host("h1"), host("h2")], [vm("db", "h1")])
    plan = plan_rollout(s, change(stop_approved=(StopApproval("db", 900),)))
    assert plan.host_plan("h1").moves == (Move("db", "h2"),)
    assert plan.host_plan("h1").stops == ()


def test_allowed_hosts_restrict_the_destination() -> None:
    s = snap(
        [host("h1"), host("h2", mem=65536), host("h3")],
        [vm("a", "h1", allowed_hosts=("h1", "h3"))],
    )
    assert plan_rollout(s, change()).host_plan("h1").moves == (Move("a", "h3"),)
    only_out = snap(
        [host("h1"), host("h2"), host("h3", in_maintenance=True)],
        [vm("a", "h1", allowed_hosts=("h1", "h3"))],
    )
    plan = plan_rollout(only_out, change(exclude_hosts=(HostExclusion("h3", "repair"),)))
    assert plan.host_plan("h1").blocked == ("a",)
    assert "placement allows only h1, h3, none of them in service" in plan.problems[0]


def test_anti_affinity_is_kept_on_the_destination() -> None:
    hosts = [host("h1"), host("h2", mem=65536), host("h3")]
    vms = [vm("web1", "h1"), vm("web2", "h2")]
    # without the rule web1 would go to the roomiest host, h2
    assert plan_rollout(snap(hosts, vms), change()).host_plan("h1").moves == (Move("web1", "h2"),)
    ruled = plan_rollout(snap(hosts, vms, anti_affinity=(("web1", "web2"),)), change())
    assert ruled.host_plan("h1").moves == (Move("web1", "h3"),)
    # the change's own groups count as well
    via_change = plan_rollout(snap(hosts, vms), change(anti_affinity=(("web1", "web2"),)))
    assert via_change.host_plan("h1").moves == (Move("web1", "h3"),)
    two = plan_rollout(snap(hosts[:2], vms, anti_affinity=(("web1", "web2"),)), change())
    assert "anti-affinity with web2 leaves no allowed host" in two.problems[0]


def test_powered_off_vms_and_templates_stay_registered() -> None:
    s = snap(
        [host("h1"), host("h2", mem=512)],
        [
            vm("off", "h1", mem=4096, powered_on=False),
            vm("tpl", "h1", powered_on=False, template=True),
        ],
    )
    plan = plan_rollout(s, change())
    assert plan.feasible
    assert plan.host_plan("h1").idle == ("off", "tpl") and plan.host_plan("h1").moves == ()


def test_excluded_host_is_skipped_with_its_reason_and_receives_nothing() -> None:
    s = snap(
        [host("h1"), host("h2", mem=65536, in_maintenance=True), host("h3")],
        [vm("a", "h1")],
    )
    c = change(exclude_hosts=(HostExclusion("h2", "DIMM replacement"),))
    plan = plan_rollout(s, c)
    assert plan.feasible
    assert [p.host for p in plan.order] == ["h1", "h3"]
    assert [(k.host, k.reason) for k in plan.skipped] == [
        ("h2", "excluded by the change: DIMM replacement")
    ]
    assert plan.host_plan("h1").moves == (Move("a", "h3"),)


def test_maintenance_disconnected_tasks_and_wrong_cluster_are_problems() -> None:
    s = snap(
        [host("h1"), host("h2", in_maintenance=True), host("h3", connected=False), host("h4")],
        [],
        tasks_in_flight=("task-7 RelocateVM_Task vm-9",),
    )
    plan = plan_rollout(s, change(cluster="other", exclude_hosts=(HostExclusion("h9", "gone"),)))
    text = "\n".join(plan.problems)
    assert "the change is for cluster other, the snapshot is of c1" in text
    assert "tasks still in flight: task-7 RelocateVM_Task vm-9" in text
    assert "host h2 is in maintenance mode and not excluded" in text
    assert "host h3 is not connected" in text
    assert "exclude_hosts names host h9, which is not in cluster c1" in text
    assert [p.host for p in plan.order] == ["h1", "h4"]


def test_hosts_already_at_target_are_skipped_and_rerun_plans_nothing() -> None:
    s = snap([host("h1", build=TARGET_BUILD), host("h2")], [vm("a", "h2")])
    plan = plan_rollout(s, change())
    assert [p.host for p in plan.order] == ["h2"]
    assert (
        plan.skipped[0].host == "h1"
        and "already at the target (build 2000)" in plan.skipped[0].reason
    )
    done = snap([host("h1", build=TARGET_BUILD), host("h2", build=TARGET_BUILD)], [vm("a", "h1")])
    again = plan_rollout(done, change())
    assert again.feasible and again.order == ()
    # unknown package versions never count as reached
    pkgs = change(target=ChangeTarget(packages={"agent": "1.1"}))
    assert [p.host for p in plan_rollout(snap([host("h1"), host("h2")], []), pkgs).order] == [
        "h1",
        "h2",
    ]
    at = snap([host("h1", packages={"agent": "1.1"}), host("h2", packages={"agent": "1.0"})], [])
    assert [p.host for p in plan_rollout(at, pkgs).order] == ["h2"]


def test_resume_skips_committed_hosts_and_continues_the_current_one() -> None:
    s = snap(
        [host("h1"), host("h2", in_maintenance=True), host("h3")],
        [vm("a", "h1"), vm("b", "h3")],
    )
    plan = plan_rollout(s, change(), committed={"h1": "committed by run R1"}, current="h2")
    assert plan.feasible, plan.problems
    assert [p.host for p in plan.order] == ["h2", "h3"]
    assert [(k.host, k.reason) for k in plan.skipped] == [("h1", "committed by run R1")]
    # while h2 is out (first), b cannot go there; after it returns it may
    assert plan.host_plan("h3").moves[0].destination in ("h1", "h2")
    # without `current`, the same host in maintenance is a problem
    assert not plan_rollout(s, change(), committed={"h1": "committed by run R1"}).feasible


def test_vm_on_an_unknown_host_is_a_problem() -> None:
    plan = plan_rollout(snap([host("h1"), host("h2")], [vm("a", "elsewhere")]), change())
    assert plan.problems == ("vm a is on host elsewhere, which is not in cluster c1",)


def test_render_and_json_carry_the_digest_and_every_decision() -> None:
    s = snap(
        [host("h1"), host("h2", mem=2048)],
        [
            vm("mover", "h1"),
            vm("pin", "h1", allowed_hosts=("h1",), pinned=True),
            vm("stopme", "h1", allowed_hosts=("h1",), pinned=True),
            vm("idle", "h1", powered_on=False),
        ],
    )
    plan = plan_rollout(s, change(stop_approved=(StopApproval("stopme", 60),)))
    text = render_plan(plan)
    assert plan.digest in text and plan.change_digest in text and plan.snapshot_digest in text
    assert "move mover -> h2" in text
    assert "stop stopme (approved to stop)" in text
    assert "stays idle" in text and "BLOCKED pin" in text
    assert "feasible         NO (1 problem(s)" in text
    data = plan.to_json()
    assert data["digest"] == plan.digest and data["feasible"] is False
    assert data["order"][0] == {
        "host": "h1",
        "moves": [{"vm": "mover", "destination": "h2"}],
        "stops": ["stopme"],
        "idle": ["idle"],
        "blocked": ["pin"],
    }


def test_digest_follows_decisions_not_irrelevant_inventory() -> None:
    hosts = [host("h1"), host("h2"), host("h3")]
    vms = [vm("a", "h1"), vm("off", "h2", powered_on=False)]
    plan = plan_rollout(snap(hosts, vms), change())
    # more memory on a host that is not chosen either way, or a bigger powered-off VM: same plan
    roomier = [host("h1", mem=9000), hosts[1], hosts[2]]
    same = plan_rollout(snap(roomier, vms), change())
    assert same.snapshot_digest != plan.snapshot_digest
    assert same.digest == plan.digest
    bigger_off = [vms[0], vm("off", "h2", mem=4096, powered_on=False)]
    assert plan_rollout(snap(hosts, bigger_off), change()).digest == plan.digest
    # pinning a moved VM changes a decision: a different digest
    pinned = [vm("a", "h1", allowed_hosts=("h1",), pinned=True), vms[1]]
    assert plan_rollout(snap(hosts, pinned), change()).digest != plan.digest
    # so does a different change file (its digest is covered)
    assert plan_rollout(snap(hosts, vms), change(digest="cd" * 32)).digest != plan.digest


def test_natural_key_orders_numbers_as_numbers() -> None:
    names = ["esx10", "esx2", "esx1", "esx01", "db", "esx1b"]
    assert sorted(names, key=natural_key) == ["db", "esx01", "esx1", "esx1b", "esx2", "esx10"]


def test_plan_is_frozen_data() -> None:
    plan = plan_rollout(snap([host("h1"), host("h2")], []), change())
    assert isinstance(plan, RolloutPlan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.digest = "x"  # type: ignore[misc]
    assert isinstance(plan.order[0], HostPlan)
