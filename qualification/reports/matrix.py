"""The traceability matrix: URS requirement -> tests -> results -> deviations.

A requirement the spec declares but that no executed test covers is marked ``not covered``
(a test that was planned but has no result, or ended ``not-executed``, did not execute).
Requirements that results reference but the spec does not declare are listed after the
declared ones, marked as not declared, so nothing a result claims to cover goes missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qualification.reports.model import Records, Result, results_of, worst
from qualification.verdict import Verdict

#: As a plain string: this comparison runs for every test of every requirement.
_NOT_EXECUTED = Verdict.NOT_EXECUTED.value

COVERED = "covered"
NOT_COVERED = "not covered"


@dataclass(frozen=True)
class Trace:
    """One test result traced to a requirement."""

    test_id: str
    title: str
    target: str
    protocol: str
    verdict: str
    deviation: str | None
    executed: bool


@dataclass(frozen=True)
class Row:
    """One requirement of the matrix.

    Attributes:
        requirement: the URS id.
        declared: whether the spec declares it (False: only a result references it).
        tests: the results tracing to it, in record order.
        deviations: the deviation ids of those results, sorted, without repeats.
        status: ``covered`` when at least one of its tests executed, else ``not covered``.
        verdict: the worst verdict of its tests, or None when it has none.
    """

    requirement: str
    declared: bool
    tests: tuple[Trace, ...]
    deviations: tuple[str, ...]
    status: str
    verdict: str | None


def _executed(result: Result) -> bool:
    return result.recorded and result.verdict != _NOT_EXECUTED


def rows_for(results: Iterable[Result], declared: Sequence[str]) -> list[Row]:
    """The matrix for already loaded results (see :func:`traceability`)."""
    by_requirement: dict[str, list[Result]] = {}
    order: list[str] = []
    for result in results:
        for requirement in result.requirements:
            if requirement not in by_requirement:
                by_requirement[requirement] = []
                order.append(requirement)
            by_requirement[requirement].append(result)
    declared_ids = list(dict.fromkeys(declared))
    extra = sorted(r for r in order if r not in set(declared_ids))
    rows: list[Row] = []
    for requirement in declared_ids + extra:
        traced = by_requirement.get(requirement, [])
        rows.append(
            Row(
                requirement=requirement,
                declared=requirement in declared_ids,
                tests=tuple(
                    Trace(
                        test_id=r.test_id,
                        title=r.title,
                        target=r.target,
                        protocol=r.protocol,
                        verdict=r.verdict,
                        deviation=r.deviation,
                        executed=_executed(r),
                    )
                    for r in traced
                ),
                deviations=tuple(sorted({r.deviation for r in traced if r.deviation})),
                status=COVERED if any(_executed(r) for r in traced) else NOT_COVERED,
                verdict=worst(r.verdict for r in traced) if traced else None,
            )
        )
    return rows


def traceability(records: Records, declared: Sequence[str]) -> list[Row]:
    """Trace each requirement to the tests that cover it, their results and deviations.

    Args:
        records: the decoded records of one run (docs/formats.md).
        declared: the requirement ids the spec declares, in the order to show them.

    Returns:
        One row per declared requirement (in ``declared`` order), then one per requirement
        that only results reference (sorted).
    """
    return rows_for(results_of(records), declared)
