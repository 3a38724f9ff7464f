"""Risk inheritance: the qualification depth of a target follows its most critical application.

A target's risk is the highest of
- the applications assigned to it (its own ``vqual_applications``, and applications any host
  declares with ``vm: <this target>``),
- the applications of every host in its cluster (``vqual_cluster``), since a VM may run on any
  of them,
- its ``vqual_risk`` floor.
With no application and no floor the risk is ``high``: without a classification the
conservative choice is to run everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from qualification.spec.inventory import Application, InventoryModel
from qualification.spec.model import RISK_LEVELS, Spec, TestDef

DEFAULT_RISK = "high"


def risk_rank(level: str) -> int:
    """Position of ``level`` in :data:`RISK_LEVELS` (low 0, medium 1, high 2).

    Raises:
        ValueError: not a risk level.
    """
    return RISK_LEVELS.index(level)


@dataclass(frozen=True)
class RiskAssessment:
    """A target's risk level and why.

    Attributes:
        level: ``high``, ``medium`` or ``low``.
        reason: one line naming every source that sets the level and where it came from.
        sources: each contributing source at this level, as text (same content as ``reason``).
    """

    level: str
    reason: str
    sources: tuple[str, ...]


def _describe(app: Application, target: str, how: str) -> str:
    return f"application {app.name!r} ({app.risk}) {how}"


def assess_risk(inventory: InventoryModel, target: str) -> RiskAssessment:
    """The risk of ``target`` and the reason, by the rules in this module's docstring.

    Raises:
        BadInputError: ``target`` is not in the inventory.
    """
    info = inventory.host(target)
    candidates: list[tuple[str, str]] = []
    for app in info.applications:
        where = f"on VM {app.vm!r} of host {target!r}" if app.vm else f"on host {target!r}"
        candidates.append((app.risk, _describe(app, target, where)))
    for app in inventory.applications_on_vm(target):
        if app.host != target:
            candidates.append(
                (app.risk, _describe(app, target, f"on this VM (declared on host {app.host!r})"))
            )
    if info.cluster:
        for member in inventory.cluster_members(info.cluster):
            if member == target:
                continue
            for app in inventory.host(member).applications:
                where = f"on host {member!r} of cluster {info.cluster!r}"
                if app.vm:
                    where = f"on VM {app.vm!r} of host {member!r} in cluster {info.cluster!r}"
                candidates.append((app.risk, _describe(app, target, where)))
    if info.risk_floor:
        candidates.append((info.risk_floor, f"vqual_risk floor {info.risk_floor!r} on {target!r}"))
    if not candidates:
        reason = (
            f"{DEFAULT_RISK}: no application and no vqual_risk floor for {target!r}; "
            "unclassified targets are qualified at the highest level"
        )
        return RiskAssessment(level=DEFAULT_RISK, reason=reason, sources=())
    level = max((risk for risk, _ in candidates), key=risk_rank)
    # the same application can reach a target twice (own VM and cluster); say it once
    sources = tuple(dict.fromkeys(text for risk, text in candidates if risk == level))
    return RiskAssessment(level=level, reason=f"{level}: " + "; ".join(sources), sources=sources)


def select_tests(spec: Spec, kinds: tuple[str, ...], level: str) -> tuple[TestDef, ...]:
    """Tests of ``spec`` that a target of these kinds at this risk level must run, in spec order."""
    return tuple(test for test in spec.tests if test.applies(kinds, level))
