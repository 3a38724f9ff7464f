"""The traceability matrix: URS requirement -> tests -> results -> deviations.

A requirement the spec declares but that no executed test covers is marked ``not covered``
(a test that was planned but has no result, or ended ``not-executed``, did not execute).
Requirements that results reference but the spec does not declare are listed after the
declared ones, marked as not declared, so nothing a result claims to cover goes missing.

With the spec's requirements file (docs/spec.md, "Requirements file"), every requirement of
that file is a row, with its text and one row kind (:data:`ROW_KINDS`): a test of this run
covers it (``T``), another shipped spec does (``S``, named), vqual's own evidence does (``E``,
the ``vqual selftest`` checks named), a procedure does (``P``, SOP id and its document's
digest: never shown as passed), or nothing does (``not covered``). Whatever else maps
requirement ids to tests (results carry their URS ids) feeds the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qualification.reports.model import Records, Result, results_of, worst
from qualification.verdict import Verdict

#: As a plain string: this comparison runs for every test of every requirement.
_NOT_EXECUTED = Verdict.NOT_EXECUTED.value

COVERED = "covered"
NOT_COVERED = "not covered"

#: Row kinds, in the order one is chosen: a test of this run, another shipped spec, vqual's
#: own evidence, a procedure, nothing.
ROW_TEST = "T"
ROW_SPEC = "S"
ROW_EVIDENCE = "E"
ROW_PROCEDURE = "P"
ROW_NONE = NOT_COVERED
ROW_KINDS = (ROW_TEST, ROW_SPEC, ROW_EVIDENCE, ROW_PROCEDURE, ROW_NONE)


@dataclass(frozen=True)
class Procedure:
    """A procedure outside vqual that covers a requirement: the SOP's id, its document (as
    the requirements file names it) and the document's SHA-256."""

    sop: str
    document: str
    digest: str

    def to_json(self) -> dict[str, str]:
        return {"sop": self.sop, "document": self.document, "digest": self.digest}


@dataclass(frozen=True)
class Requirement:
    """One requirement of the requirements file and what covers it besides this run's tests.

    Attributes:
        id: the URS id.
        text: the requirement as written.
        specs: shipped specs whose tests cover it.
        evidence: ``vqual selftest`` check ids whose sealed results cover it (``E``).
        procedure: the procedure that covers it (``P``), or None.
    """

    id: str
    text: str
    specs: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    procedure: Procedure | None = None

    def to_json(self) -> dict[str, Any]:
        """As ``run.start`` ``traceability.requirements`` holds it (docs/formats.md)."""
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.specs:
            out["specs"] = list(self.specs)
        if self.evidence:
            out["evidence"] = list(self.evidence)
        if self.procedure is not None:
            out["procedure"] = self.procedure.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Requirement:
        """Read :meth:`to_json` back; what is malformed reads as absent (a report shows what
        the records hold)."""
        proc = data.get("procedure")
        procedure = (
            Procedure(str(proc.get("sop") or ""), str(proc.get("document") or ""),
                      str(proc.get("digest") or ""))
            if isinstance(proc, Mapping)
            else None
        )
        return cls(
            id=str(data.get("id") or ""),
            text=str(data.get("text") or ""),
            specs=_strings(data.get("specs")),
            evidence=_strings(data.get("evidence")),
            procedure=procedure,
        )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def requirements_of(start: Mapping[str, Any]) -> tuple[Requirement, ...]:
    """The requirements file's entries a ``run.start`` carries (``traceability``), or none."""
    block = start.get("traceability")
    items = block.get("requirements") if isinstance(block, Mapping) else None
    if not isinstance(items, list):
        return ()
    return tuple(Requirement.from_json(i) for i in items if isinstance(i, Mapping) and i.get("id"))


def row_kind(tested: bool, requirement: Requirement | None, spec: str | None = None) -> str:
    """The row kind of one requirement (see :data:`ROW_KINDS`).

    Args:
        tested: a test of this run cites it (executed or not).
        requirement: its entry in the requirements file, or None.
        spec: this spec's name; it does not count as another spec.
    """
    if tested:
        return ROW_TEST
    if requirement is None:
        return ROW_NONE
    if any(name != spec for name in requirement.specs):
        return ROW_SPEC
    if requirement.evidence:
        return ROW_EVIDENCE
    if requirement.procedure is not None:
        return ROW_PROCEDURE
    return ROW_NONE


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
        text: the requirement's text from the requirements file ("" without one).
        kind: the row kind (:data:`ROW_KINDS`).
        coverage: the requirements file's entry (other specs, evidence, procedure), or None.
    """

    requirement: str
    declared: bool
    tests: tuple[Trace, ...]
    deviations: tuple[str, ...]
    status: str
    verdict: str | None
    text: str = ""
    kind: str = ROW_NONE
    coverage: Requirement | None = None

    @property
    def other_specs(self) -> tuple[str, ...]:
        """The other shipped specs that cover it (``S``)."""
        return self.coverage.specs if self.coverage is not None else ()


def _executed(result: Result) -> bool:
    return result.recorded and result.verdict != _NOT_EXECUTED


def rows_for(
    results: Iterable[Result],
    declared: Sequence[str],
    catalogue: Sequence[Requirement] = (),
    spec: str | None = None,
) -> list[Row]:
    """The matrix for already loaded results (see :func:`traceability`).

    ``catalogue`` (the requirements file's entries) puts its requirements first, in its
    order, each with its text and row kind; ``spec`` is this run's spec name (not counted
    as another spec covering a requirement).
    """
    by_requirement: dict[str, list[Result]] = {}
    order: list[str] = []
    for result in results:
        for requirement in result.requirements:
            if requirement not in by_requirement:
                by_requirement[requirement] = []
                order.append(requirement)
            by_requirement[requirement].append(result)
    entries = {r.id: r for r in catalogue}
    declared_ids = list(dict.fromkeys([*entries, *declared]))
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
                text=entries[requirement].text if requirement in entries else "",
                kind=row_kind(bool(traced), entries.get(requirement), spec),
                coverage=entries.get(requirement),
            )
        )
    return rows


def traceability(
    records: Records, declared: Sequence[str], catalogue: Sequence[Requirement] = ()
) -> list[Row]:
    """Trace each requirement to the tests that cover it, their results and deviations.

    Args:
        records: the decoded records of one run (docs/formats.md).
        declared: the requirement ids the spec declares, in the order to show them.
        catalogue: the requirements file's entries (shown first, in their order).

    Returns:
        One row per requirement of the catalogue, then per other declared requirement (in
        ``declared`` order), then one per requirement that only results reference (sorted).
    """
    return rows_for(results_of(records), declared, catalogue)
