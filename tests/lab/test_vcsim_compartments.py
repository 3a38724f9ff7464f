"""Fire compartments and HA pairs in the rolling-patch plan, on the lab's simulated vCenter
(URS-CL-02; docs/rolling-patch.md, "Fire compartments"): its 4-host cluster split into two
compartments of two hosts each, an HA pair of two of its running VMs on hosts of different
compartments. Read-only: the plan is made from the live cluster and nothing is changed, so
the shared simulator stays as other tests expect it.

The simulator places its VMs itself, so the pair and the compartments are chosen from what it
reports: the pair's hosts go to different compartments, each with one of the other hosts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from vqual_lab import manager, vcsim

from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.rollout.change import (
    ChangeTarget,
    ChangeWindow,
    HostExclusion,
    RolloutChange,
    StopApproval,
)
from qualification.rollout.inventory import SitePlacement, site_placement, snapshot
from qualification.rollout.planner import RolloutPlan, natural_key, plan_rollout
from tests.conftest import run_vqual

pytestmark = pytest.mark.lab

CLUSTER = "DC0_C0"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The pair (in natural order), the host of each, and the compartments."""

    pair: tuple[str, str]
    hosts: dict[str, str]  # vm -> host
    compartments: dict[str, str]  # host -> compartment

    def other(self, vm: str) -> str:
        """The other host of ``vm``'s compartment."""
        mine = self.compartments[self.hosts[vm]]
        return next(h for h, c in self.compartments.items()
                    if c == mine and h != self.hosts[vm])


@pytest.fixture(scope="module")
def vc(lab: object) -> Iterator[VspherePlatform]:
    ctx = manager.context()
    comp = manager.component("vcsim")
    assert isinstance(comp, vcsim.VcsimComponent)
    inst = comp.instance("vcenter")
    user, password = vcsim.read_credentials(ctx, inst)
    with VspherePlatform(Endpoint(inst.address, user, password, port=inst.port,
                                  validate_certs=False)) as platform:
        yield platform


@pytest.fixture(scope="module")
def layout(vc: VspherePlatform) -> Layout:
    hosts = sorted((h.name for h in vc.hosts() if h.cluster == CLUSTER), key=natural_key)
    assert len(hosts) >= 4, hosts
    running = sorted((v for v in vc.vms() if v.power_state == "running" and v.host in hosts),
                     key=lambda v: natural_key(v.name))
    first = running[0]
    second = next((v for v in running if v.host != first.host), None)
    assert second is not None, f"the simulator runs all its VMs on {first.host}"
    rest = [h for h in hosts if h not in (first.host, second.host)]
    compartments = {first.host: "DC0/FC-1", rest[0]: "DC0/FC-1",
                    second.host: "DC0/FC-2", rest[1]: "DC0/FC-2"}
    compartments.update({h: "DC0/FC-3" for h in rest[2:]})
    return Layout((first.name, second.name), {first.name: first.host, second.name: second.host},
                  compartments)


def change(**kw: Any) -> RolloutChange:
    base = RolloutChange(
        change_id="CHG0018001", title="compartments", risk="medium", cluster=CLUSTER,
        target=ChangeTarget(packages={"esx-standin-patch": "9.9"}),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)),
        digest="cd" * 32, path=Path("change.yaml"),
    )
    return dataclasses.replace(base, **kw)


def plan_for(vc: VspherePlatform, layout: Layout, compartments: dict[str, str] | None = None,
             **kw: Any) -> RolloutPlan:
    placement = SitePlacement(compartments or layout.compartments, (layout.pair,))
    return plan_rollout(snapshot(vc, CLUSTER, placement=placement), change(**kw))


def test_each_pair_member_moves_within_its_own_compartment(vc: VspherePlatform,
                                                           layout: Layout) -> None:
    plan = plan_for(vc, layout)
    assert plan.feasible, plan.problems
    where = dict(layout.hosts)
    moved = set()
    for host_plan in plan.order:
        for move in host_plan.moves:
            if move.vm in where:
                assert layout.compartments[move.destination] == \
                    layout.compartments[where[move.vm]], (move, where)
                where[move.vm] = move.destination
                moved.add(move.vm)
    assert moved == set(layout.pair)  # both were drained, each stayed in its compartment


def test_no_host_in_its_compartment_refuses_naming_pair_hosts_compartments(
        vc: VspherePlatform, layout: Layout) -> None:
    a, b = layout.pair
    blocked = layout.other(a)
    plan = plan_for(vc, layout, exclude_hosts=(HostExclusion(blocked, "fire door repair"),))
    assert not plan.feasible
    assert plan.host_plan(layout.hosts[a]).blocked == (a,)
    [line] = [p for p in plan.problems if f"vm {a} " in p]
    ha = layout.hosts[a]
    ca, cb = layout.compartments[ha], layout.compartments[layout.hosts[b]]
    # the hosts are where the members stand at that step: b may have moved within its own
    hb = next(h for h, c in layout.compartments.items() if c == cb and f", {h}; " in line)
    expected = (f"anti-affinity group {a}, {b} (hosts {ha}, {hb}; fire compartments {ca}, {cb}): "
                f"vm {a} on host {ha} is blocking: no other host of its fire compartment {ca} "
                "is in service")
    assert line.startswith(expected), line
    # approved to stop: it is stopped on its host instead
    stopped = plan_for(vc, layout, exclude_hosts=(HostExclusion(blocked, "fire door repair"),),
                       stop_approved=(StopApproval(a, 900),))
    assert stopped.feasible, stopped.problems
    assert stopped.host_plan(ha).stops == (a,)


def test_a_pair_already_in_one_compartment_is_refused(vc: VspherePlatform,
                                                      layout: Layout) -> None:
    a, b = layout.pair
    together = dict.fromkeys(layout.compartments, "DC0/FC-9")
    plan = plan_for(vc, layout, together)
    assert not plan.feasible
    assert any(f"{a} and {b} already share fire compartment DC0/FC-9" in p
               for p in plan.problems), plan.problems


def test_vqual_patch_plan_reads_compartments_and_pairs_from_the_inventory(
        vc: VspherePlatform, layout: Layout, executor_state: Path, tmp_path: Path) -> None:
    """The CLI's way in: the ESXi hosts are listed in the inventory for their placement
    variables only, beside the lab's vCenter endpoint."""
    lab_inventory = yaml.safe_load((manager.inventory_dir(manager.context()) / "hosts.yml")
                                   .read_text())
    vcenter = lab_inventory["all"]["children"]["vcenter"]
    pair = [list(layout.pair)]
    placement_hosts = {
        host: {"vqual_cluster": CLUSTER, "vqual_site": "DC0",
               "vqual_fire_compartment": compartment.split("/")[1], "vqual_anti_affinity": pair}
        for host, compartment in layout.compartments.items()
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "vcenter": vcenter, "esxi_placement": {"hosts": placement_hosts}}}}))
    assert site_placement(placement_hosts, CLUSTER).compartments == layout.compartments
    a, b = layout.pair
    change_file = tmp_path / "change.yaml"
    change_file.write_text(yaml.safe_dump({
        "apiVersion": "vqual.change/v1", "change_id": "CHG0018002", "title": "compartments",
        "risk": "medium", "cluster": CLUSTER,
        "target": {"packages": {"esx-standin-patch": "9.9"}},
        "window": {"start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
        "exclude_hosts": [{"host": layout.other(a), "reason": "fire door repair"}],
    }))
    done = run_vqual("patch", "-i", str(inventory), "--change", str(change_file), "--plan",
                     "--json", state_dir=executor_state)
    assert done.returncode == 1, done.stdout + done.stderr  # not feasible
    plan = json.loads(done.stdout)
    [line] = [p for p in plan["problems"] if f"vm {a} " in p]
    ca, cb = layout.compartments[layout.hosts[a]], layout.compartments[layout.hosts[b]]
    assert line.startswith(f"anti-affinity group {a}, {b} (hosts {layout.hosts[a]}, "), line
    assert f"; fire compartments {ca}, {cb}): vm {a} on host {layout.hosts[a]} " in line, line
