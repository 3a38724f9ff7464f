"""Gates before any change: each reads, none writes. All are evaluated, every failure named.

A refused gate raises :class:`GateRefused` (exit 2: nothing was changed) listing every failed
gate on one line each; the orchestrator makes no mutating platform call before all pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from qualification.errors import EXIT_BAD_INPUT, VqualError
from qualification.rollout.change import RolloutChange
from qualification.rollout.model import ClusterSnapshot
from qualification.rollout.planner import RolloutPlan
from qualification.timeutil import utc_text


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


class GateRefused(VqualError):
    """One or more gates failed before any change (exit 2)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, gates: Sequence[Gate]) -> None:
        self.gates = tuple(gates)
        failed = [g for g in gates if not g.passed]
        text = "; ".join(f"{g.name}: {g.detail}" for g in failed)
        super().__init__(f"refused before any change: {text}")


def window_gate(change: RolloutChange, now: datetime) -> Gate:
    ok = change.window.contains(now)
    return Gate(
        "window",
        ok,
        f"now {utc_text(now)} is {'inside' if ok else 'outside'} the change window "
        f"{utc_text(change.window.start)} .. {utc_text(change.window.end)}",
    )


def cluster_gates(
    snapshot: ClusterSnapshot,
    change: RolloutChange,
    plan: RolloutPlan,
    *,
    bind: str | None = None,
    explained_maintenance: Collection[str] = (),
) -> list[Gate]:
    """The platform and plan gates (docs/rolling-patch.md, "Gates").

    Args:
        explained_maintenance: hosts a resumed run's journal puts in maintenance (not a halt).
    """
    gates: list[Gate] = []
    down = [h.name for h in snapshot.hosts if not h.connected]
    gates.append(Gate("connected", not down,
                      f"hosts not connected: {', '.join(down)}" if down
                      else f"all {len(snapshot.hosts)} hosts connected"))
    excluded = {e.host for e in change.exclude_hosts}
    unexplained = [
        h.name for h in snapshot.hosts
        if h.in_maintenance and h.name not in excluded and h.name not in explained_maintenance
    ]
    gates.append(Gate(
        "maintenance", not unexplained,
        f"hosts already in maintenance and not excluded by the change: {', '.join(unexplained)}"
        if unexplained else "no host in maintenance except excluded ones"
        + (" and the resumed run's current host" if explained_maintenance else ""),
    ))
    busy = list(snapshot.tasks_in_flight)
    gates.append(Gate("in_flight", not busy,
                      f"tasks or migrations in flight: {', '.join(busy)}" if busy
                      else "no tasks or migrations in flight"))
    gates.append(Gate("plan", plan.feasible,
                      "; ".join(plan.problems) if plan.problems
                      else f"plan {plan.digest[:16]} is feasible"))
    if bind is not None:
        gates.append(Gate("bind", plan.digest == bind,
                          f"live plan digest {plan.digest} "
                          f"{'equals' if plan.digest == bind else 'differs from'} the bound {bind}"))
    return gates


def enforce(gates: Sequence[Gate], progress: Callable[[str], None] | None = None) -> None:
    """Raise :class:`GateRefused` if any gate failed; report each gate to ``progress``."""
    for gate in gates:
        if progress is not None:
            progress(f"gate {gate.name}: {'ok' if gate.passed else 'REFUSED'}: {gate.detail}")
    if not all(g.passed for g in gates):
        raise GateRefused(gates)
