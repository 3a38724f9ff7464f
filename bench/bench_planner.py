"""Planning a rolling patch at fleet scale: 64 hosts and 5,000 VMs, against the 12-host,
500-VM plan in the same run.

Both clusters come from one generator with a fixed seed: hosts split over two fire
compartments of one site, sized so the cluster keeps N+1 room under the change's headroom;
VMs of 1-8 vCPUs and 1-32 GiB (a tenth powered off, a few templates, some restricted to a
subset of hosts, a few pinned and approved to stop); anti-affinity groups of three (an HA pair
and a witness), one group per 16 VMs. The placement is also written as the inventory
variables ``qualification/checks/placement.py`` reads (``vqual_cluster``, ``vqual_site``,
``vqual_fire_compartment``, ``vqual_vms``, ``vqual_anti_affinity``), and the placement checks
on compartments and anti-affinity are timed on it; a planner that takes the inventory's
compartments (``HostState.compartment``, ``ClusterSnapshot.ha_pairs``) gets them.

Each round plans both clusters, interleaved so load from other work hits both alike; the
median of the rounds is reported, and the ratio large/small.

Run: ``.venv/bin/python bench/bench_planner.py [--repeat 7]``.
Goal (issue 19): planning 64 hosts / 5,000 VMs in under 1 second.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qualification.checks import placement
from qualification.rollout.change import (
    ChangeTarget,
    ChangeWindow,
    RolloutChange,
    StopApproval,
)
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import RolloutPlan, plan_rollout

VCPUS = (1, 2, 2, 4, 4, 8)
MEM_GIB = (1, 2, 4, 4, 8, 16, 32)


def fleet(
    n_hosts: int, n_vms: int, seed: int = 19
) -> tuple[ClusterSnapshot, RolloutChange, dict[str, Any]]:
    """A cluster, its change and its inventory (``{"hosts": {name: vars}}``)."""
    rnd = random.Random(seed)
    names = [f"esx{i:02d}" for i in range(1, n_hosts + 1)]
    compartment = {n: ("FC-A" if i % 2 == 0 else "FC-B") for i, n in enumerate(names)}
    vms: list[VmState] = []
    for i in range(n_vms):
        on = names[i % n_hosts]
        template = i % 97 == 0
        pinned = i % 101 == 5
        allowed: tuple[str, ...] = (on,) if pinned else ()
        ha_member = i % 16 in (8, 9)  # an HA pair below: free to move within its compartment
        if not pinned and not ha_member and i % 13 == 0:
            allowed = tuple(sorted({on, *rnd.sample(names, min(4, n_hosts))}))
        vms.append(VmState(
            name=f"vm{i:04d}", host=on, vcpus=rnd.choice(VCPUS),
            memory_mib=rnd.choice(MEM_GIB) * 1024,
            powered_on=not template and rnd.random() > 0.1, allowed_hosts=allowed,
            pinned=pinned, template=template,
        ))
    # N+1 with room to spare: every host can take its share of one drained host's load.
    per_host = n_vms / n_hosts
    host_cpus = 16 * int(per_host * 3.5 / 4 / 0.9 * 1.3 / 16 + 1)
    host_mib = 256 * 1024 * int(per_host * 9.6 * 1024 / 0.9 * 1.3 / (256 * 1024) + 1)
    # A planner that knows fire compartments reads them from the hosts (``compartment``).
    where = {"compartment": ""} if "compartment" in _fields(HostState) else {}
    hosts = tuple(
        HostState(n, host_cpus, host_mib, True, False, "8.0.2", "22380479",
                  **{k: f"site1/{compartment[n]}" for k in where})
        for n in names
    )
    # platform anti-affinity: three consecutive VMs, on three different hosts
    groups = tuple(
        tuple(f"vm{g * 16 + k:04d}" for k in (1, 2, 3)) for g in range(n_vms // 16)
    )
    # HA pairs (the inventory's vqual_anti_affinity): two VMs on neighbouring hosts, so in
    # different fire compartments
    pairs = tuple((f"vm{g * 16 + 8:04d}", f"vm{g * 16 + 9:04d}") for g in range(n_vms // 16))
    change = RolloutChange(
        change_id="CHG0001900", title="bench", risk="high", cluster="bench",
        target=ChangeTarget(hypervisor_build="24022515"),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
        digest="0" * 64, path=Path("bench.yaml"),
        stop_approved=tuple(StopApproval(v.name, 900) for v in vms if v.pinned),
    )
    inventory: dict[str, Any] = {"hosts": {
        n: {
            "vqual_cluster": "bench", "vqual_site": "site1",
            "vqual_fire_compartment": compartment[n],
            "vqual_compartment_policy": {"min_compartments": 2, "max_imbalance": 1},
            "vqual_anti_affinity": [list(p) for p in pairs],
            "vqual_vms": [v.name for v in vms if v.host == n],
        }
        for n in names
    }}
    extra = {"ha_pairs": pairs} if "ha_pairs" in _fields(ClusterSnapshot) else {}
    snapshot = ClusterSnapshot("bench", hosts, tuple(vms), anti_affinity=groups, **extra)
    return snapshot, change, inventory


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def compartments_planned() -> bool:
    """True where the planner keeps HA pairs apart by fire compartment."""
    return "compartment" in _fields(HostState) and "ha_pairs" in _fields(ClusterSnapshot)


def planner(snapshot: ClusterSnapshot, change: RolloutChange) -> Callable[[], RolloutPlan]:
    """plan_rollout as ``vqual patch --plan`` calls it."""
    return lambda: plan_rollout(snapshot, change)


def checks(inventory: dict[str, Any]) -> Callable[[], None]:
    """The placement checks on compartments and anti-affinity, on the inventory."""
    def run() -> None:
        cluster = placement.cluster_of(inventory, "esx01")
        placement.compartments(cluster)
        placement.anti_affinity(cluster)
    return run


def timed(fn: Callable[[], object], cpu: list[float]) -> float:
    """Wall time of ``fn``; its CPU time is appended to ``cpu`` (robust to a loaded machine)."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sizes = {"small": (12, 500), "large": (64, 5000)}
    built = {k: fleet(h, v) for k, (h, v) in sizes.items()}
    plans = {k: planner(b[0], b[1]) for k, b in built.items()}
    place = {k: checks(b[2]) for k, b in built.items()}
    for key, make in plans.items():
        snap = built[key][0]
        n_pairs = len(built[key][2]["hosts"]["esx01"]["vqual_anti_affinity"])
        plan = make()
        assert make().digest == plan.digest, "the plan is not deterministic"
        print(
            f"{key}: {len(snap.hosts)} hosts, {len(snap.vms)} VMs "
            f"({sum(v.powered_on for v in snap.vms)} powered on), "
            f"{len(snap.anti_affinity)} anti-affinity groups, {n_pairs} HA pairs over 2 fire "
            f"compartments ({'planned' if compartments_planned() else 'checked, not planned'}); "
            f"feasible={plan.feasible} moves={sum(len(h.moves) for h in plan.order)} "
            f"stops={sum(len(h.stops) for h in plan.order)} digest={plan.digest[:16]}"
        )
        if plan.problems:
            print("  problems: " + "; ".join(plan.problems[:3]))
    times: dict[str, list[float]] = {f"{k}-{w}": [] for k in sizes for w in ("plan", "checks")}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    for _ in range(args.repeat):
        for key in sizes:
            times[f"{key}-plan"].append(timed(plans[key], cpu[f"{key}-plan"]))
            times[f"{key}-checks"].append(timed(place[key], cpu[f"{key}-checks"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    for key, (h, v) in sizes.items():
        print(f"plan {h:>3} hosts {v:>5} VMs: median {med[key + '-plan'] * 1000:8.1f} ms "
              f"(CPU {cpu_med[key + '-plan'] * 1000:.1f} ms, min {min(times[key + '-plan']) * 1000:.1f}, "
              f"n={args.repeat}); placement checks {med[key + '-checks'] * 1000:.1f} ms")
    ratio = med["large-plan"] / med["small-plan"]
    print(f"ratio large/small: {ratio:.1f}x wall, "
          f"{cpu_med['large-plan'] / cpu_med['small-plan']:.1f}x CPU "
          f"(VMs x{5000 / 500:.0f}, hosts x{64 / 12:.1f})")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    goal = med["large-plan"] < 1.0
    print(f"goal (< 1 s for 64 hosts / 5,000 VMs): {'met' if goal else 'MISSED'} "
          f"({med['large-plan']:.3f} s)")
    return 0 if goal else 1


if __name__ == "__main__":
    raise SystemExit(main())
