"""The non-lab parts of test_compartments_kvm_lab.py: the lab's KVM inventory as the lab
writes it (KvmCluster.inventory, no host started), rewritten by the same helpers, read back
through Ansible's inventory, and what the CL-02 check and the planner decide on it for a
cluster shaped like the lab's (kvm1 and kvm2, clone1 on kvm1 and clone2 on kvm2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqual_lab import manager
from vqual_lab.component import LabContext
from vqual_lab.kvm import DEFAULT_HOSTS, KvmCluster

from qualification.checks.placement import Cluster, anti_affinity, compartments
from qualification.execution.inventory import read_hostvars
from qualification.rollout.change import load_change
from qualification.rollout.inventory import site_placement
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import plan_rollout
from tests.integration.compartments_kvm import (
    CLUSTER,
    HOME,
    PAIR,
    placed_inventory,
    refusal_start,
    write_change,
    write_inventory,
)


def _hostvars(tmp_path: Path, places: dict[str, str]) -> dict[str, dict[str, Any]]:
    ctx = LabContext(tmp_path, tmp_path / "run", None, lambda _m: None)
    lab = manager.build_inventory([KvmCluster(DEFAULT_HOSTS).inventory(ctx)])
    inventory = write_inventory(tmp_path, placed_inventory(lab, places))
    return read_hostvars(inventory, patterns=("vqual_.*",))


def _lab_shaped(hostvars: dict[str, dict[str, Any]]) -> ClusterSnapshot:
    """What inventory.snapshot reads from the lab, with the inventory's placement."""
    placement = site_placement(hostvars, CLUSTER)
    hosts = tuple(HostState(h, 2, 3072, True, False, "9.0.0", "", {"vqual-lab-agent": "1.0"},
                            compartment=placement.compartments.get(h, ""))
                  for h in ("kvm1", "kvm2"))
    vms = tuple(VmState(vm, host, 1, 256, True) for vm, host in HOME.items())
    return ClusterSnapshot(CLUSTER, hosts, vms, ha_pairs=placement.ha_pairs)


def test_one_compartment_inventory_fails_the_spread_naming_both_hosts(tmp_path: Path) -> None:
    hostvars = _hostvars(tmp_path, {"kvm1": "FC-1", "kvm2": "FC-1"})
    observed = compartments(Cluster(CLUSTER, dict(hostvars.items())))
    assert observed.reason is not None
    assert "spans 1 fire compartment(s) (lab/FC-1: kvm1, kvm2)" in observed.reason
    pair = anti_affinity(Cluster(CLUSTER, dict(hostvars.items())))
    assert pair.reason is not None
    assert "clone1 (kvm1) and clone2 (kvm2) share fire compartment lab/FC-1" in pair.reason
    # the planner refuses the pair as it stands, even with both approved to stop
    plan = plan_rollout(_lab_shaped(hostvars),
                        load_change(write_change(tmp_path, "CHG0018106", stop=PAIR)))
    assert not plan.feasible
    assert any(p.startswith("anti-affinity group clone1, clone2 (hosts kvm1, kvm2; fire "
                            "compartments lab/FC-1, lab/FC-1): clone1 and clone2 already share")
               for p in plan.problems), plan.problems


def test_the_lab_compartments_refuse_the_pair_or_stop_it_when_approved(tmp_path: Path) -> None:
    hostvars = _hostvars(tmp_path, {"kvm1": "FC-1", "kvm2": "FC-2"})
    snap = _lab_shaped(hostvars)
    assert {h.name: h.compartment for h in snap.hosts} == {"kvm1": "lab/FC-1",
                                                          "kvm2": "lab/FC-2"}
    assert snap.ha_pairs == (PAIR,)
    refused = plan_rollout(snap, load_change(write_change(tmp_path, "CHG0018104")))
    assert not refused.feasible
    for vm in PAIR:
        assert any(p.startswith(refusal_start(vm)) for p in refused.problems), refused.problems
    stopped = plan_rollout(snap, load_change(write_change(tmp_path, "CHG0018105", stop=PAIR)))
    assert stopped.feasible, stopped.problems
    assert [h.stops for h in stopped.order] == [("clone1",), ("clone2",)]
