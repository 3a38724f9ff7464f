"""OQ self check of the rolling-patch planner and fire compartments (VQ-75, URS-CL-02): on
generated data, an HA pair member moves only within its own compartment, is stopped where the
change approves it, and otherwise the plan is refused naming the pair, its hosts and their
compartments."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualification.rollout.change import ChangeTarget, ChangeWindow, RolloutChange, StopApproval
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import RolloutPlan, plan_rollout
from qualification.selftest.base import Outcome, SelfCheck

#: Four hosts, two per compartment; the FC-2 hosts are roomier, so without compartments the
#: pair member on h1 would go there. ``ha-b`` sits in FC-2 beside the pair's other member.
_PLACES = {"h1": "S/FC-1", "h2": "S/FC-1", "h3": "S/FC-2", "h4": "S/FC-2"}
_MEMORY = {"h1": 8192, "h2": 8192, "h3": 65536, "h4": 65536}
#: ST-OQ-32: case -> [feasible, what the plan did with ha-a].
_WANT: dict[str, list[Any]] = {
    "room in its compartment": [True, "h2"],
    "no room, not approved": [False, True],
    "no room, approved to stop": [True, ["ha-a"]],
}
_REFUSAL = ("anti-affinity group ha-a, ha-b (hosts h1, h3; fire compartments S/FC-1, "
            "S/FC-2): vm ha-a on host h1 is blocking: capacity shortfall")


def _snapshot(filler_mib: int) -> ClusterSnapshot:
    hosts = tuple(HostState(h, 8, _MEMORY[h], True, False, "1", "1", compartment=c)
                  for h, c in _PLACES.items())
    vms = (VmState("ha-a", "h1", 1, 4096, True), VmState("ha-b", "h3", 1, 4096, True),
           VmState("filler", "h2", 1, filler_mib, True))
    return ClusterSnapshot("selftest", hosts, vms, ha_pairs=(("ha-a", "ha-b"),))


def _change(**kw: Any) -> RolloutChange:
    base = RolloutChange(
        change_id="CHG-SELFTEST", title="selftest", risk="low", cluster="selftest",
        target=ChangeTarget(hypervisor_build="2"),
        window=ChangeWindow(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)),
        digest="0" * 64, path=Path("selftest-change.yaml"), headroom=0.0, vcpu_ratio=1.0,
    )
    return dataclasses.replace(base, **kw)


def _first_move(plan: RolloutPlan, vm: str) -> str | None:
    return next((m.destination for p in plan.order for m in p.moves if m.vm == vm), None)


def compartment_rule() -> Outcome:
    """Three plans: room in the own compartment, none (refused), none but approved (stop)."""
    roomy = plan_rollout(_snapshot(1024), _change())
    full = plan_rollout(_snapshot(8000), _change())
    approved = plan_rollout(_snapshot(8000),
                            _change(stop_approved=(StopApproval("ha-a", 600),)))
    got = {
        "room in its compartment": [roomy.feasible, _first_move(roomy, "ha-a")],
        "no room, not approved": [
            full.feasible, any(p.startswith(_REFUSAL) for p in full.problems)],
        "no room, approved to stop": [approved.feasible, list(approved.host_plan("h1").stops)],
    }
    wrong = [f"{case}: {got[case]} (problems {full.problems})" for case in _WANT
             if got[case] != _WANT[case]]
    return Outcome(not wrong, got, "; ".join(wrong) or None)



def compartment_checks() -> list[SelfCheck]:
    """OQ: ST-OQ-32 (VQ-75)."""
    return [
        SelfCheck(
            "ST-OQ-32",
            "the rolling-patch planner never puts an HA pair in one fire compartment: it moves "
            "a member within its own, stops it when approved, or refuses naming pair, hosts "
            "and compartments",
            "OQ",
            "VQ-75",
            "qualification.rollout.planner.plan_rollout on a generated 4-host cluster in two "
            "compartments with one HA pair, with and without room and stop approval",
            {"op": "equals", "value": _WANT},
            compartment_rule,
        ),
    ]
