"""Properties of the planner over generated clusters, each checked by replaying the plan
independently of the planner's own bookkeeping:

- determinism: the same input (in any input order) gives the same plan and digest;
- every VM on a host at its turn is classified exactly once (moved, stopped, idle, blocked);
- no destination goes over its capacity under headroom and overcommit;
- anti-affinity is never violated by a move;
- a host never receives VMs while it is drained, nor while it is out (maintenance, excluded,
  disconnected); placement rules hold;
- the digest changes when a decision changes.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qualification.rollout.change import (
    ChangeTarget,
    ChangeWindow,
    HostExclusion,
    RolloutChange,
    StopApproval,
)
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import Move, RolloutPlan, host_capacity, plan_rollout

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ClusterSnapshot, RolloutChange]:
    n_hosts = draw(st.integers(2, 6))
    names = [f"h{i}" for i in range(1, n_hosts + 1)]
    hosts = []
    excluded: list[HostExclusion] = []
    for name in names:
        state = draw(st.sampled_from(["ok"] * 6 + ["maintenance", "excluded", "offline"]))
        hosts.append(
            HostState(
                name=name,
                vcpus=draw(st.sampled_from([2, 4, 8, 16])),
                memory_mib=draw(st.sampled_from([2048, 4096, 8192, 16384])),
                connected=state != "offline",
                in_maintenance=state in ("maintenance", "excluded") and draw(st.booleans()),
                version="8.0",
                build=draw(st.sampled_from(["1000", "1000", "1000", "2000"])),
            )
        )
        if state == "excluded":
            excluded.append(HostExclusion(name, "generated"))
    n_vms = draw(st.integers(0, 24))
    vms = []
    for i in range(n_vms):
        on = draw(st.sampled_from(names))
        template = draw(st.integers(0, 9)) == 0
        allowed: tuple[str, ...] = ()
        pinned = False
        rule = draw(st.integers(0, 9))
        if rule == 0:
            allowed, pinned = (on,), True
        elif rule == 1:
            allowed = tuple(sorted({on, *draw(st.lists(st.sampled_from(names), max_size=3))}))
        vms.append(
            VmState(
                name=f"vm{i}",
                host=on,
                vcpus=draw(st.integers(1, 8)),
                memory_mib=draw(st.sampled_from([256, 512, 1024, 2048, 4096])),
                powered_on=not template and draw(st.integers(0, 4)) != 0,
                allowed_hosts=allowed,
                pinned=pinned,
                template=template,
            )
        )
    # anti-affinity groups whose members start on distinct hosts (a valid starting state)
    groups: list[tuple[str, ...]] = []
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 3))):
        members: list[str] = []
        hosts_taken: set[str] = set()
        for v in draw(st.permutations(vms)) if vms else []:
            if v.name not in used and v.host not in hosts_taken and len(members) < 3:
                members.append(v.name)
                hosts_taken.add(v.host)
        if len(members) >= 2 and draw(st.booleans()):
            groups.append(tuple(members))
            used.update(members)
    split = draw(st.integers(0, len(groups)))
    approved = tuple(StopApproval(v.name, 600) for v in vms if draw(st.integers(0, 5)) == 0)
    change = RolloutChange(
        change_id="CHG0000001",
        title="generated",
        risk="medium",
        cluster="c1",
        target=ChangeTarget(hypervisor_build="2000"),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        digest="ab" * 32,
        path=Path("change.yaml"),
        headroom=draw(st.sampled_from([0.0, 0.1, 0.25])),
        vcpu_ratio=draw(st.sampled_from([1.0, 2.0, 4.0])),
        stop_approved=approved,
        exclude_hosts=tuple(excluded),
        anti_affinity=tuple(groups[:split]),
    )
    snapshot = ClusterSnapshot("c1", tuple(hosts), tuple(vms), anti_affinity=tuple(groups[split:]))
    return snapshot, change


def replay(
    snapshot: ClusterSnapshot,
    change: RolloutChange,
    plan: RolloutPlan,
    committed: frozenset[str] = frozenset(),
    current: str | None = None,
) -> None:
    """Check every move of the plan against the cluster it acts on, step by step."""
    hosts = {h.name: h for h in snapshot.hosts}
    vms = {v.name: v for v in snapshot.vms}
    where = {v.name: v.host for v in snapshot.vms}
    running = {v.name for v in snapshot.vms if v.powered_on and not v.template}
    groups = snapshot.anti_affinity + change.anti_affinity
    never = {h for h in hosts if change.exclusion(h) is not None or not hosts[h].connected}
    never |= {h for h in hosts if hosts[h].in_maintenance and h != current}
    # the resumed host is out of service until its own turn is over
    out = {current} if current in hosts and hosts[current].in_maintenance else set()
    skipped = {s.host for s in plan.skipped}
    ordered = [p.host for p in plan.order]
    assert len(set(ordered)) == len(ordered), "a host appears twice in the order"
    assert not skipped & set(ordered)
    assert set(ordered) <= set(hosts) - never
    assert not (committed - never) & set(ordered), "a committed host is patched again"
    if current is not None and current in ordered:
        assert ordered[0] == current, "the resumed host does not come first"
    problems = "\n".join(plan.problems)

    def load(h: str) -> tuple[int, int]:
        on = [vms[n] for n, at in where.items() if at == h and n in running]
        return sum(v.vcpus for v in on), sum(v.memory_mib for v in on)

    for hp in plan.order:
        present = {n for n, at in where.items() if at == hp.host}
        classes = [
            [m.vm for m in hp.moves],
            list(hp.stops),
            list(hp.idle),
            list(hp.blocked),
        ]
        flat = [n for c in classes for n in c]
        assert len(flat) == len(set(flat)), f"{hp.host}: a VM classified twice"
        assert set(flat) == present, f"{hp.host}: classified {flat}, present {present}"
        for name in hp.idle:
            assert name not in running
        for name in hp.stops:
            assert name in running and change.stop_approval(name) is not None
        for name in hp.blocked:
            assert name in running and change.stop_approval(name) is None
            assert f"vm {name} on host {hp.host} is blocking" in problems
        for move in hp.moves:
            v = vms[move.vm]
            dest = move.destination
            assert move.vm in running
            assert dest != hp.host, "a VM lands on the host being drained"
            assert dest in hosts and dest not in never, f"{dest} is out of service"
            assert dest not in out, f"{dest} is still out"
            assert not v.pinned and (not v.allowed_hosts or dest in v.allowed_hosts)
            for group in groups:
                if move.vm in group:
                    clash = [m for m in group if m != move.vm and m in running and where[m] == dest]
                    assert not clash, f"{move.vm} joins {clash} on {dest}"
            where[move.vm] = dest
            cpu, mem = load(dest)
            cap_cpu, cap_mem = host_capacity(hosts[dest], change)
            assert cpu <= cap_cpu + 1e-9 and mem <= cap_mem + 1e-9, f"{dest} over capacity"
        out.discard(hp.host)
    assert plan.feasible == (plan.problems == ())


@SETTINGS
@given(scenarios())
def test_every_plan_replays_safely(case: tuple[ClusterSnapshot, RolloutChange]) -> None:
    snapshot, change = case
    replay(snapshot, change, plan_rollout(snapshot, change))


@SETTINGS
@given(scenarios(), st.data())
def test_resumed_plans_replay_safely(
    case: tuple[ClusterSnapshot, RolloutChange], data: st.DataObject
) -> None:
    snapshot, change = case
    names = [h.name for h in snapshot.hosts]
    committed = frozenset(data.draw(st.lists(st.sampled_from(names), max_size=3)))
    current = data.draw(st.none() | st.sampled_from(names))
    plan = plan_rollout(
        snapshot, change, committed={h: "committed by run R0" for h in committed}, current=current
    )
    replay(snapshot, change, plan, committed, current)
    for host in committed:
        if change.exclusion(host) is None and snapshot.host(host).connected:
            assert (host, "committed by run R0") in {(s.host, s.reason) for s in plan.skipped}


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_whatever_the_input_order(
    case: tuple[ClusterSnapshot, RolloutChange], rnd: object
) -> None:
    snapshot, change = case
    first = plan_rollout(snapshot, change)
    assert plan_rollout(snapshot, change) == first
    hosts, vms = list(snapshot.hosts), list(snapshot.vms)
    rnd.shuffle(hosts)  # type: ignore[attr-defined]
    rnd.shuffle(vms)  # type: ignore[attr-defined]
    shuffled = dataclasses.replace(snapshot, hosts=tuple(hosts), vms=tuple(vms))
    again = plan_rollout(shuffled, change)
    assert again.digest == first.digest
    assert again.order == first.order and again.problems == first.problems


@SETTINGS
@given(scenarios(), st.data())
def test_digest_changes_when_a_decision_changes(
    case: tuple[ClusterSnapshot, RolloutChange], data: st.DataObject
) -> None:
    snapshot, change = case
    plan = plan_rollout(snapshot, change)
    moved = [m for hp in plan.order for m in hp.moves]
    assume(moved)
    target = data.draw(st.sampled_from(moved))
    # pin the moved VM where it is: it can no longer move, so its decision changes
    vms = tuple(
        dataclasses.replace(v, allowed_hosts=(v.host,), pinned=True) if v.name == target.vm else v
        for v in snapshot.vms
    )
    changed = plan_rollout(dataclasses.replace(snapshot, vms=vms), change)
    assert changed.digest != plan.digest
    assert changed.to_json()["order"] != plan.to_json()["order"]


@SETTINGS
@given(scenarios())
def test_powered_off_sizes_do_not_change_the_plan(
    case: tuple[ClusterSnapshot, RolloutChange],
) -> None:
    snapshot, change = case
    plan = plan_rollout(snapshot, change)
    vms = tuple(
        v if v.powered_on else dataclasses.replace(v, memory_mib=v.memory_mib * 8, vcpus=64)
        for v in snapshot.vms
    )
    other = plan_rollout(dataclasses.replace(snapshot, vms=vms), change)
    assert other.digest == plan.digest


@SETTINGS
@given(scenarios())
def test_snapshot_json_round_trip(case: tuple[ClusterSnapshot, RolloutChange]) -> None:
    snapshot, _ = case
    assert ClusterSnapshot.from_json(snapshot.to_json()) == snapshot


def test_the_replay_catches_an_unsafe_plan() -> None:
    # The properties above are only as good as the replay: it must reject a move onto the
    # host being drained, onto a host over capacity, and a VM left unclassified.
    hosts = (
        HostState("h1", 4, 4096, True, False, "8.0", "1000"),
        HostState("h2", 4, 4096, True, False, "8.0", "1000"),
    )
    vms = (VmState("a", "h1", 2, 3000, True), VmState("b", "h2", 2, 3000, True))
    snapshot = ClusterSnapshot("c1", hosts, vms)
    change = RolloutChange(
        change_id="CHG0000001",
        title="t",
        risk="low",
        cluster="c1",
        target=ChangeTarget(hypervisor_build="2000"),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        digest="ab" * 32,
        path=Path("change.yaml"),
        headroom=0.0,
        vcpu_ratio=1.0,
    )
    plan = plan_rollout(snapshot, change)
    assert not plan.feasible  # 6000 MiB never fit in 4096
    h1 = plan.order[0]
    bad_plans = [
        dataclasses.replace(h1, blocked=(), moves=(Move("a", "h1"),)),
        dataclasses.replace(h1, blocked=(), moves=(Move("a", "h2"),)),
        dataclasses.replace(h1, blocked=()),
    ]
    for bad in bad_plans:
        forged = dataclasses.replace(plan, order=(bad, *plan.order[1:]))
        try:
            replay(snapshot, change, forged)
        except AssertionError:
            continue
        raise AssertionError(f"replay accepted {bad}")
