"""Planning a rolling patch of a 12-host cluster with 500 VMs, against a plain first-fit loop
over the same data, measured in the same run.

The cluster is generated from a fixed seed: 12 hosts (48 logical CPUs, 768 GiB each), 500 VMs
(1-8 vCPUs, 1-32 GiB, a tenth powered off, a few templates), 30 anti-affinity groups of three,
some VMs restricted to a subset of hosts, a few pinned ones approved to stop.

1. ``plan_rollout``: the planner as ``vqual patch --plan`` runs it (placement, anti-affinity,
   headroom, patched-host preference, digests of the snapshot and the plan);
2. baseline: the same host order and the same carried-forward simulation, but each VM goes
   to the first host with room by vCPU and memory, nothing else checked, no digest.

Run: ``.venv/bin/python bench/bench_rollout_plan.py [--hosts 12] [--vms 500] [--repeat 7]``.
Goal (issue 7): planning 12 hosts / 500 VMs in under 1 second.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qualification.rollout.change import (
    ChangeTarget,
    ChangeWindow,
    RolloutChange,
    StopApproval,
)
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import host_capacity, plan_rollout


def cluster(n_hosts: int, n_vms: int, seed: int = 7) -> tuple[ClusterSnapshot, RolloutChange]:
    rnd = random.Random(seed)
    names = [f"esx{i:02d}" for i in range(1, n_hosts + 1)]
    hosts = tuple(HostState(n, 48, 768 * 1024, True, False, "8.0.2", "22380479") for n in names)
    vms = []
    for i in range(n_vms):
        on = names[i % n_hosts]
        template = i % 97 == 0
        pinned = i % 101 == 5
        allowed: tuple[str, ...] = (on,) if pinned else ()
        if not pinned and i % 13 == 0:
            allowed = tuple(sorted({on, *rnd.sample(names, min(4, n_hosts))}))
        vms.append(
            VmState(
                name=f"vm{i:03d}",
                host=on,
                vcpus=rnd.choice([1, 2, 2, 4, 4, 8]),
                memory_mib=rnd.choice([1, 2, 4, 4, 8, 16, 32]) * 1024,
                powered_on=not template and rnd.random() > 0.1,
                allowed_hosts=allowed,
                pinned=pinned,
                template=template,
            )
        )
    # groups of three VMs on three different hosts
    groups = tuple(
        (f"vm{g * 3 + 1:03d}", f"vm{g * 3 + 2:03d}", f"vm{g * 3 + 3:03d}") for g in range(30)
    )
    change = RolloutChange(
        change_id="CHG0000700",
        title="bench",
        risk="high",
        cluster="bench",
        target=ChangeTarget(hypervisor_build="24022515"),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
        digest="0" * 64,
        path=Path("bench.yaml"),
        stop_approved=tuple(StopApproval(v.name, 900) for v in vms if v.pinned),
    )
    return ClusterSnapshot("bench", hosts, tuple(vms), anti_affinity=groups), change


def first_fit(snapshot: ClusterSnapshot, change: RolloutChange) -> int:
    """The baseline: same order, first host with room; returns the number of moves."""
    names = sorted(h.name for h in snapshot.hosts)
    caps = {h.name: host_capacity(h, change) for h in snapshot.hosts}
    where = {v.name: v.host for v in snapshot.vms}
    size = {v.name: (v.vcpus, v.memory_mib) for v in snapshot.vms if v.powered_on}
    cpu = dict.fromkeys(names, 0.0)
    mem = dict.fromkeys(names, 0.0)
    for vm, (c, m) in size.items():
        cpu[where[vm]] += c
        mem[where[vm]] += m
    moves = 0
    for host in names:
        for vm in [v for v, h in where.items() if h == host and v in size]:
            c, m = size[vm]
            for dest in names:
                if (
                    dest != host
                    and cpu[dest] + c <= caps[dest][0]
                    and mem[dest] + m <= caps[dest][1]
                ):
                    where[vm] = dest
                    cpu[host] -= c
                    mem[host] -= m
                    cpu[dest] += c
                    mem[dest] += m
                    moves += 1
                    break
    return moves


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=12)
    parser.add_argument("--vms", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    snapshot, change = cluster(args.hosts, args.vms)
    plan = plan_rollout(snapshot, change)
    again = plan_rollout(snapshot, change)
    assert again.digest == plan.digest, "the plan is not deterministic"
    moves = sum(len(h.moves) for h in plan.order)
    base_moves = first_fit(snapshot, change)
    # interleave the two so load from other work on the machine hits both alike
    planner_s: list[float] = []
    baseline_s: list[float] = []
    for _ in range(args.repeat):
        planner_s += timed(lambda: plan_rollout(snapshot, change), 1)
        baseline_s += timed(lambda: first_fit(snapshot, change), 1)
    p_med, b_med = statistics.median(planner_s), statistics.median(baseline_s)
    print(
        f"cluster: {args.hosts} hosts, {args.vms} VMs "
        f"({sum(v.powered_on for v in snapshot.vms)} powered on), "
        f"{len(snapshot.anti_affinity)} anti-affinity groups"
    )
    print(
        f"plan: feasible={plan.feasible} moves={moves} "
        f"stops={sum(len(h.stops) for h in plan.order)} "
        f"idle={sum(len(h.idle) for h in plan.order)} digest={plan.digest[:16]}"
    )
    if plan.problems:
        print("  problems: " + "; ".join(plan.problems[:3]))
    print(
        f"plan_rollout  median {p_med * 1000:8.1f} ms  (min {min(planner_s) * 1000:.1f}, "
        f"max {max(planner_s) * 1000:.1f}, n={len(planner_s)})"
    )
    print(
        f"first-fit     median {b_med * 1000:8.1f} ms  (min {min(baseline_s) * 1000:.1f}, "
        f"moves {base_moves}, nothing but capacity checked)"
    )
    print(f"ratio planner/first-fit: {p_med / b_med:.2f}x")
    goal = p_med < 1.0
    print(f"goal (< 1 s for the whole plan): {'met' if goal else 'MISSED'} ({p_med:.3f} s)")
    return 0 if goal else 1


if __name__ == "__main__":
    raise SystemExit(main())
