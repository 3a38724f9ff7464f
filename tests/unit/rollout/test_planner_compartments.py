"""The planner and fire compartments (URS-CL-02): an HA pair member moves within its own
compartment, else stops when the change approves it, else the plan is refused naming the pair,
its hosts and their compartments, in that order. Also the inventory side (site_placement) and
the snapshot's new fields."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from qualification.errors import BadInputError
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.rollout.change import StopApproval
from qualification.rollout.inventory import SitePlacement, site_placement, snapshot
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import Move, RolloutPlan, plan_rollout
from tests.unit.rollout.test_planner import change, host, snap, vm

PAIR = (("db-a", "db-b"),)


def two_by_two(**overrides: dict[str, Any]) -> list[HostState]:
    """h1, h2 in DC1/FC-1; h3, h4 in DC1/FC-2; h3 and h4 are roomier, so without compartments
    a VM from h1 would go there."""
    sizes = {"h1": 8192, "h2": 8192, "h3": 65536, "h4": 65536}
    places = {"h1": "DC1/FC-1", "h2": "DC1/FC-1", "h3": "DC1/FC-2", "h4": "DC1/FC-2"}
    return [
        host(name, mem=sizes[name], compartment=places[name], **overrides.get(name, {}))
        for name in sizes
    ]


def ordered(line: str, *parts: str) -> bool:
    """True if every part occurs in ``line``, in this order."""
    at = 0
    for part in parts:
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def test_pair_member_moves_within_its_own_compartment() -> None:
    vms = [vm("db-a", "h1"), vm("db-b", "h3"), vm("web", "h1")]
    plan = plan_rollout(snap(two_by_two(), vms, ha_pairs=PAIR), change())
    assert plan.feasible, plan.problems
    h1 = plan.host_plan("h1")
    # the unpaired VM goes to the roomiest host (h4: h3 carries db-b); the pair member stays
    # in FC-1, on the smaller h2
    assert h1.moves == (Move("db-a", "h2"), Move("web", "h4"))
    assert Move("db-b", "h4") in plan.host_plan("h3").moves
    # every simulated position of every pair member: never both in one compartment
    compartments = {h.name: h.compartment for h in two_by_two()}
    where = {"db-a": "h1", "db-b": "h3"}
    for host_plan in plan.order:
        for move in host_plan.moves:
            if move.vm in where:
                where[move.vm] = move.destination
                assert compartments[where["db-a"]] != compartments[where["db-b"]]


def test_without_compartments_a_pair_is_kept_apart_by_host_only() -> None:
    hosts = [host("h1"), host("h2"), host("h3", mem=65536)]
    vms = [vm("db-a", "h1"), vm("db-b", "h2")]
    plan = plan_rollout(snap(hosts, vms, ha_pairs=PAIR), change())
    assert plan.host_plan("h1").moves == (Move("db-a", "h3"),)
    # never onto the mate's host, even without compartments
    two = plan_rollout(snap(hosts[:2], vms, ha_pairs=PAIR), change())
    assert not two.feasible and "anti-affinity with db-b" in two.problems[0]


def _full_h2() -> list[VmState]:
    # h2 has no room left for db-a (4 GiB): the only other host of FC-1
    return [vm("db-a", "h1", mem=4096), vm("db-b", "h3"), vm("big", "h2", mem=8000)]


def test_pair_member_that_cannot_move_within_its_compartment_is_stopped_when_approved() -> None:
    approved = change(stop_approved=(StopApproval("db-a", 1800),))
    plan = plan_rollout(snap(two_by_two(), _full_h2(), ha_pairs=PAIR), approved)
    assert plan.feasible, plan.problems
    assert plan.host_plan("h1").stops == ("db-a",)
    assert all(m.vm != "db-a" for p in plan.order for m in p.moves)


def test_plan_is_refused_naming_pair_hosts_and_compartments() -> None:
    plan = plan_rollout(snap(two_by_two(), _full_h2(), ha_pairs=PAIR), change())
    assert not plan.feasible
    assert plan.host_plan("h1").blocked == ("db-a",)
    [line] = [p for p in plan.problems if "db-a" in p]
    assert ordered(line, "db-a, db-b", "h1, h3", "DC1/FC-1, DC1/FC-2"), line
    assert "capacity shortfall" in line and "the most room is on h2" in line
    assert line.endswith("the change does not approve stopping it")


def test_pair_member_whose_compartment_has_no_other_host_in_service() -> None:
    hosts = two_by_two(h2={"in_maintenance": False, "connected": False})
    plan = plan_rollout(snap(hosts, [vm("db-a", "h1"), vm("db-b", "h3")], ha_pairs=PAIR), change())
    [line] = [p for p in plan.problems if "db-a" in p]
    assert ordered(line, "anti-affinity group db-a, db-b", "(hosts h1, h3;",
                   "fire compartments DC1/FC-1, DC1/FC-2)",
                   "no other host of its fire compartment DC1/FC-1 is in service"), line


def test_two_kvm_hosts_one_per_compartment_refuse_or_stop_the_pair() -> None:
    """The lab's shape: kvm1 in lab/FC-1, kvm2 in lab/FC-2, a pair split over them. Each
    member's compartment has no other host, so it cannot move (on kvm2 it would join its
    mate's compartment): refused, or stopped where the change approves it."""
    hosts = [host("kvm1", compartment="lab/FC-1"), host("kvm2", compartment="lab/FC-2")]
    vms = [vm("guest-a", "kvm1"), vm("guest-b", "kvm2"), vm("solo", "kvm1")]
    pair = (("guest-a", "guest-b"),)
    plan = plan_rollout(snap(hosts, vms, ha_pairs=pair), change())
    assert not plan.feasible
    assert plan.host_plan("kvm1").moves == (Move("solo", "kvm2"),)
    assert plan.host_plan("kvm1").blocked == ("guest-a",)
    assert plan.host_plan("kvm2").blocked == ("guest-b",)
    assert ordered(plan.problems[0], "guest-a, guest-b", "kvm1, kvm2", "lab/FC-1, lab/FC-2")
    approved = change(stop_approved=(StopApproval("guest-a", 600), StopApproval("guest-b", 600)))
    stopped = plan_rollout(snap(hosts, vms, ha_pairs=pair), approved)
    assert stopped.feasible, stopped.problems
    assert stopped.host_plan("kvm1").stops == ("guest-a",)
    assert stopped.host_plan("kvm2").stops == ("guest-b",)


def test_pair_already_sharing_a_compartment_is_a_problem() -> None:
    hosts = [host("kvm1", compartment="lab/FC-1"), host("kvm2", compartment="lab/FC-1")]
    vms = [vm("guest-a", "kvm1"), vm("guest-b", "kvm2", powered_on=False)]
    plan = plan_rollout(snap(hosts, vms, ha_pairs=(("guest-a", "guest-b"),)), change())
    assert not plan.feasible
    [line] = [p for p in plan.problems if "already share" in p]
    assert ordered(line, "guest-a, guest-b", "kvm1, kvm2", "lab/FC-1, lab/FC-1",
                   "guest-a and guest-b already share fire compartment lab/FC-1"), line


def test_host_without_a_compartment_keeps_its_pair_member() -> None:
    hosts = [*two_by_two()[:2], host("h5")]
    vms = [vm("db-a", "h5"), vm("db-b", "h1")]
    plan = plan_rollout(snap(hosts, vms, ha_pairs=PAIR), change())
    [line] = [p for p in plan.problems if "db-a on host h5" in p]
    assert "(none: h5)" in line


def test_unpaired_vms_are_planned_as_before() -> None:
    vms = [vm("web1", "h1"), vm("web2", "h2")]
    with_places = plan_rollout(snap(two_by_two(), vms), change())
    plain = [host(h.name, mem=h.memory_mib) for h in two_by_two()]
    without = plan_rollout(snap(plain, vms), change())
    assert with_places.digest == without.digest


def _pair_positions(plan: RolloutPlan, start: dict[str, str]) -> list[dict[str, str]]:
    where, seen = dict(start), [dict(start)]
    for host_plan in plan.order:
        for move in host_plan.moves:
            if move.vm in where:
                where[move.vm] = move.destination
                seen.append(dict(where))
    return seen


def test_many_pairs_on_a_large_cluster_never_share_a_compartment() -> None:
    places = {f"h{i}": f"DC{i % 2}/FC-{i % 4}" for i in range(1, 17)}
    hosts = [host(name, vcpus=64, mem=262144, compartment=c) for name, c in places.items()]
    vms, pairs, start = [], [], {}
    names = list(places)
    for n in range(200):
        a_host, b_host = names[n % 16], names[(n + 1) % 16]  # neighbours: other compartments
        vms += [vm(f"a{n}", a_host), vm(f"b{n}", b_host)]
        pairs.append((f"a{n}", f"b{n}"))
        start.update({f"a{n}": a_host, f"b{n}": b_host})
    plan = plan_rollout(snap(hosts, vms, ha_pairs=tuple(pairs)), change())
    assert plan.feasible, plan.problems[:3]
    for where in _pair_positions(plan, start)[1:]:
        for a, b in pairs:
            assert places[where[a]] != places[where[b]], (a, b, where[a], where[b])


# -- snapshot and inventory ----------------------------------------------------------------------


def test_snapshot_round_trips_compartments_and_pairs_and_keeps_old_digests() -> None:
    placed = snap(two_by_two(), [vm("db-a", "h1"), vm("db-b", "h3")], ha_pairs=PAIR)
    assert ClusterSnapshot.from_json(placed.to_json()) == placed
    assert placed.to_json()["hosts"][0]["compartment"] == "DC1/FC-1"
    plain = snap([host("h1")], [vm("x", "h1")])
    assert "compartment" not in plain.to_json()["hosts"][0] and "ha_pairs" not in plain.to_json()


def test_site_placement_reads_the_clusters_inventory_hosts() -> None:
    pair = [["db-a", "db-b"]]
    hostvars: dict[str, dict[str, Any]] = {
        "kvm1": {"vqual_cluster": "lab-kvm", "vqual_site": "lab", "vqual_fire_compartment": "FC-1",
                 "vqual_anti_affinity": pair},
        "kvm2": {"vqual_cluster": "lab-kvm", "vqual_fire_compartment": "FC-2",
                 "vqual_anti_affinity": pair},
        "kvm3": {"vqual_cluster": "lab-kvm"},
        "other": {"vqual_cluster": "elsewhere", "vqual_fire_compartment": "FC-9"},
    }
    assert site_placement(hostvars, "lab-kvm") == SitePlacement(
        {"kvm1": "lab/FC-1", "kvm2": "FC-2"}, (("db-a", "db-b"),)
    )
    assert site_placement(hostvars, "none") == SitePlacement()


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([["db-a"]], [["db-a"]], "must be a list of VM name lists"),
        ([["db-a", "db-b"]], [["db-a", "db-c"]], "disagree on vqual_anti_affinity"),
    ],
)
def test_site_placement_refuses_malformed_pairs(a: object, b: object, message: str) -> None:
    hostvars: dict[str, dict[str, Any]] = {
        "kvm1": {"vqual_cluster": "c", "vqual_anti_affinity": a},
        "kvm2": {"vqual_cluster": "c", "vqual_anti_affinity": b},
    }
    with pytest.raises(BadInputError, match=re.escape(message)):
        site_placement(hostvars, "c")


def test_snapshot_carries_the_inventorys_compartments_and_pairs(tmp_path: Path) -> None:
    """On libvirt's in-process test driver (one host): the host gets its compartment by name,
    the pairs join the snapshot; a host the inventory does not place stays unknown."""
    with LibvirtPlatform("test:///default", state_dir=tmp_path) as platform:
        name = platform.host().name
        placed = snapshot(platform, "lab", placement=SitePlacement({name: "DC1/FC-1"}, PAIR))
        unplaced = snapshot(platform, "lab", placement=SitePlacement({"elsewhere": "FC-2"}))
    assert [h.compartment for h in placed.hosts] == ["DC1/FC-1"]
    assert placed.ha_pairs == PAIR
    assert [h.compartment for h in unplaced.hosts] == [""] and unplaced.ha_pairs == ()
