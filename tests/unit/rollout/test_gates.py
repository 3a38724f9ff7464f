"""Gates before any change: each refusal named, all evaluated, exit 2."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualification.rollout.change import ChangeTarget, ChangeWindow, HostExclusion, RolloutChange
from qualification.rollout.gates import GateRefused, cluster_gates, enforce, window_gate
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import plan_rollout


def _change(**overrides: object) -> RolloutChange:
    base = RolloutChange(
        change_id="CHG0000001", title="t", risk="high", cluster="c1",
        target=ChangeTarget(hypervisor_build="2000"),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        digest="ab" * 32, path=Path("change.yaml"),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def _host(name: str, **kw: object) -> HostState:
    fields: dict[str, object] = {"connected": True, "in_maintenance": False, "version": "8.0",
                                 "build": "1000"}
    fields.update(kw)
    return HostState(name, 16, 65536, **fields)  # type: ignore[arg-type]


def _snap(*hosts: HostState, vms: tuple[VmState, ...] = (), tasks: tuple[str, ...] = ()
          ) -> ClusterSnapshot:
    return ClusterSnapshot("c1", tuple(hosts), vms, (), tasks)


def _gates(snap: ClusterSnapshot, change: RolloutChange, **kw: object) -> dict[str, bool]:
    plan = plan_rollout(snap, change)
    return {g.name: g.passed for g in cluster_gates(snap, change, plan, **kw)}  # type: ignore[arg-type]


def test_window_gate_inside_and_outside() -> None:
    change = _change()
    assert window_gate(change, datetime(2026, 6, 1, tzinfo=UTC)).passed
    outside = window_gate(change, datetime(2027, 6, 1, tzinfo=UTC))
    assert not outside.passed and "outside" in outside.detail


def test_healthy_cluster_passes_every_gate() -> None:
    snap = _snap(_host("h1"), _host("h2"), vms=(VmState("v1", "h1", 1, 512, True),))
    assert _gates(snap, _change()) == {"connected": True, "maintenance": True, "in_flight": True,
                                        "plan": True}


def test_host_in_maintenance_refuses_unless_excluded_or_explained() -> None:
    snap = _snap(_host("h1"), _host("h2"), _host("h3", in_maintenance=True))
    assert not _gates(snap, _change())["maintenance"]
    excluded = _change(exclude_hosts=(HostExclusion("h3", "repair"),))
    assert _gates(snap, excluded)["maintenance"]
    plan = plan_rollout(snap, _change(), current="h3")
    explained = {g.name: g.passed for g in cluster_gates(snap, _change(), plan,
                                                         explained_maintenance=["h3"])}
    assert explained["maintenance"]


def test_disconnected_host_and_tasks_in_flight_refuse() -> None:
    snap = _snap(_host("h1"), _host("h2", connected=False), tasks=("migrate v9",))
    gates = _gates(snap, _change())
    assert not gates["connected"] and not gates["in_flight"]


def test_bind_must_equal_the_live_plan_digest() -> None:
    snap = _snap(_host("h1"), _host("h2"))
    change = _change()
    plan = plan_rollout(snap, change)
    assert {g.name: g.passed for g in cluster_gates(snap, change, plan, bind=plan.digest)}["bind"]
    assert not {g.name: g.passed for g in cluster_gates(snap, change, plan, bind="0" * 64)}["bind"]


def test_enforce_names_every_failed_gate_and_exits_2() -> None:
    snap = _snap(_host("h1", connected=False), _host("h2", in_maintenance=True))
    change = _change()
    gates = cluster_gates(snap, change, plan_rollout(snap, change))
    lines: list[str] = []
    with pytest.raises(GateRefused) as err:
        enforce(gates, lines.append)
    assert err.value.exit_code == 2
    assert "connected: hosts not connected: h1" in str(err.value)
    assert "maintenance:" in str(err.value)
    assert len(lines) == len(gates)
    assert any("REFUSED" in line for line in lines)
