"""The planner's decisions on a large generated cluster are pinned by their digest, so work on
its speed (bench/bench_planner.py) cannot change a decision unseen."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from qualification.rollout.change import ChangeTarget, ChangeWindow, RolloutChange, StopApproval
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import plan_rollout

#: The digest the planner gave before its index and mate-host changes (commit 57111d4).
PINNED = "df31274ad97d98e934d816e7ec4c29ed08d144aa11832bfbf78cd233b694b248"


def _cluster(n_hosts: int = 24, n_vms: int = 1200) -> tuple[ClusterSnapshot, RolloutChange]:
    rnd = random.Random(19)
    names = [f"esx{i}" for i in range(1, n_hosts + 1)]
    vms = []
    for i in range(n_vms):
        on = names[i % n_hosts]
        pinned = i % 101 == 5
        allowed: tuple[str, ...] = (on,) if pinned else ()
        if not pinned and i % 13 == 0:
            allowed = tuple(sorted({on, *rnd.sample(names, 4)}))
        vms.append(VmState(
            name=f"vm{i}", host=on, vcpus=rnd.choice((1, 2, 4, 8)),
            memory_mib=rnd.choice((1, 2, 4, 8, 16, 32)) * 1024,
            powered_on=i % 97 != 0 and rnd.random() > 0.1, allowed_hosts=allowed,
            pinned=pinned, template=i % 97 == 0,
        ))
    # some hosts too small, so there are capacity shortfalls and stops among the decisions
    hosts = tuple(
        HostState(n, 64 if k % 5 else 16, (640 if k % 7 else 256) * 1024, True, k == 3,
                  "8.0.2", "1")
        for k, n in enumerate(names)
    )
    groups = tuple(tuple(f"vm{g * 7 + k}" for k in (0, 1, 2)) for g in range(n_vms // 7))
    snapshot = ClusterSnapshot("c", hosts, tuple(vms), anti_affinity=groups)
    change = RolloutChange(
        change_id="CHG0001901", title="pin", risk="high", cluster="c",
        target=ChangeTarget(hypervisor_build="2"),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
        digest="0" * 64, path=Path("pin.yaml"),
        stop_approved=tuple(StopApproval(v.name, 600) for v in vms if v.pinned or v.vcpus == 8),
    )
    return snapshot, change


def test_decisions_on_a_large_cluster_keep_their_digest() -> None:
    snapshot, change = _cluster()
    plan = plan_rollout(snapshot, change)
    # the case exercises every kind of decision, not only moves
    assert plan.problems and any(h.stops for h in plan.order) and any(h.moves for h in plan.order)
    assert any(h.blocked for h in plan.order) and any(h.idle for h in plan.order)
    assert plan.digest == PINNED
