"""The decoded records of one run, arranged for reporting.

The renderers (JUnit, HTML) and the traceability matrix all read a bundle's records through
:func:`load_run` (or :func:`results_of`), so every rendering agrees on what ran, what was
planned but has no result, and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qualification.errors import BadInputError
from qualification.evidence.kinds import REGISTRY, RUN_END, RUN_START, SIGNATURE
from qualification.evidence.kinds.action import Action
from qualification.evidence.kinds.base import Deviation, data_of, opt_text, text
from qualification.evidence.kinds.check_result import Result
from qualification.evidence.kinds.host_skipped import SkippedHost
from qualification.evidence.kinds.signature import Signature
from qualification.verdict import VERDICTS, WORST_FIRST, Verdict
from qualification.verdict import worst as _worst

__all__ = [
    "VERDICTS",
    "VERDICT_ORDER",
    "Action",
    "Deviation",
    "Records",
    "Result",
    "Run",
    "Signature",
    "Target",
    "load_run",
    "results_of",
    "worst",
]

_COMMON = ("v", "seq", "prev", "time", "change_id", "run_id", "actor", "initiator", "kind", "data")


class RecordLike(Protocol):
    """A decoded record as an object (``qualification.evidence.reader.Record``).

    The renderers take decoded records either as mappings (docs/formats.md fields) or as
    such objects; an object's ``digest`` (SHA-256 of its line), if present, gives the seal
    digest of a ``run.end`` record.
    """

    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


#: What the renderers accept: decoded records as mappings or record objects.
Records = Sequence[Mapping[str, Any] | RecordLike]

#: Worst first, as docs/formats.md orders a run's overall verdict.
VERDICT_ORDER: tuple[str, ...] = tuple(v.value for v in WORST_FIRST)

NOT_FINISHED = "not executed: run did not finish"


@dataclass(frozen=True)
class Target:
    name: str
    kinds: tuple[str, ...]
    risk: str | None
    risk_reason: str | None


@dataclass(frozen=True)
class Run:
    """Everything the renderers need from one run's records."""

    change_id: str
    run_id: str
    initiator: str
    actor: str
    started_at: str | None
    ended_at: str | None
    start: Mapping[str, Any]
    end: Mapping[str, Any] | None
    targets: tuple[Target, ...]
    results: tuple[Result, ...]
    actions: tuple[Action, ...]
    deviations: tuple[Deviation, ...]
    signatures: tuple[Signature, ...]
    skipped_hosts: tuple[tuple[str, str], ...]
    #: SHA-256 of the ``run.end`` line, when the records carry line digests.
    seal: str | None = None

    @property
    def finished(self) -> bool:
        return self.end is not None

    def counts(self) -> dict[str, int]:
        """Verdict counts over recorded results (planned tests without a result excluded)."""
        counts = {verdict: 0 for verdict in VERDICTS}
        for result in self.results:
            if result.recorded:
                counts[result.verdict] = counts.get(result.verdict, 0) + 1
        return counts

    def missing(self) -> tuple[Result, ...]:
        """Planned tests with no recorded result."""
        return tuple(r for r in self.results if not r.recorded)

    def verdict(self) -> str:
        """The overall verdict: ``run.end``'s if present, else the worst of all results."""
        if self.end is not None and isinstance(self.end.get("verdict"), str):
            return str(self.end["verdict"])
        overall = worst(r.verdict for r in self.results)
        # A waived result counts as passed for the run (docs/formats.md).
        return Verdict.PASS.value if overall == Verdict.WAIVED else overall


def worst(verdicts: Any) -> str:
    """The worst verdict: fail > error > not-executed > waived > pass; ``pass`` when empty.

    ``waived`` ranks above ``pass`` only so a summary shows that a deviation was needed;
    both count as passed for the overall outcome (docs/formats.md).
    """
    return _worst(verdicts).value


def _as_mappings(records: Records) -> list[Mapping[str, Any]]:
    """The records as mappings; record objects are read through their attributes."""
    out: list[Mapping[str, Any]] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            fields = {name: getattr(record, name) for name in _COMMON if hasattr(record, name)}
            if hasattr(record, "digest"):
                fields["digest"] = record.digest
            record = fields
        if not isinstance(record.get("kind"), str):
            raise BadInputError(f"record {index} is not a decoded vqual record (no kind)")
        out.append(record)
    return out


def _rows(records: Sequence[Mapping[str, Any]]) -> list[object]:
    """Every record's report rows (its kind's), in record order; unknown kinds have none."""
    rows: list[object] = []
    kinds = REGISTRY
    for record in records:
        kind = kinds.get(record["kind"])
        if kind is not None:
            rows += kind.report_rows(record)
    return rows


def results_of(given: Records) -> tuple[Result, ...]:
    """Every ``check.result``, then every planned test of ``run.start`` that has none.

    A planned test without a result gets verdict ``error`` and a reason: its host was
    skipped, the run did not finish (no ``run.end``), or no result was recorded. Its title
    and requirements are taken from a result of the same test on another target, if any.
    """
    records = _as_mappings(given)
    return _with_missing(records, _rows(records))


def _with_missing(records: Sequence[Mapping[str, Any]], rows: list[object]) -> tuple[Result, ...]:
    results = [r for r in rows if type(r) is Result]
    start = next((r for r in records if r["kind"] == RUN_START), None)
    if start is None:
        return tuple(results)
    finished = any(r["kind"] == RUN_END for r in records)
    skipped = dict(r for r in rows if type(r) is SkippedHost)
    seen = {(r.test_id, r.target) for r in results}
    known = {r.test_id: r for r in results}
    missing: list[Result] = []
    for planned in data_of(start).get("planned") or ():
        if not isinstance(planned, Mapping):
            continue
        test_id, target = text(planned.get("test_id")), text(planned.get("target"))
        if (test_id, target) in seen:
            continue
        seen.add((test_id, target))
        if target in skipped:
            reason = f"not executed: host skipped: {skipped[target]}"
        elif not finished:
            reason = NOT_FINISHED
        else:
            reason = "not executed: no result was recorded"
        missing.append(_missing(planned, test_id, target, reason, known.get(test_id)))
    return tuple(results + missing)


def _missing(
    planned: Mapping[str, Any], test_id: str, target: str, reason: str, like: Result | None
) -> Result:
    """A planned test without a result, reported as ``error`` with ``reason``."""
    return Result(
        test_id=test_id,
        title=text(planned.get("title")) or (like.title if like else ""),
        protocol=text(planned.get("protocol")) or (like.protocol if like else "IQ"),
        target=target,
        requirements=tuple(str(x) for x in planned.get("requirements") or ())
        or (like.requirements if like else ()),
        check=like.check if like else "",
        method="",
        expected=like.expected if like else None,
        observed=None,
        verdict=Verdict.ERROR.value,
        reason=reason,
        deviation=None,
        started=None,
        finished=None,
        duration_ms=None,
        raw=None,
        seq=None,
        recorded=False,
    )


def load_run(given: Records) -> Run:
    """Arrange a run's decoded records (docs/formats.md) for reporting.

    Each record contributes its kind's report rows (qualification.evidence.kinds).

    Raises:
        BadInputError: no records, no ``run.start``, or a record that is not a decoded
            vqual record.
    """
    if not given:
        raise BadInputError("no records to report: a bundle starts with run.start")
    records = _as_mappings(given)
    start = next((r for r in records if r["kind"] == RUN_START), None)
    if start is None:
        raise BadInputError("the records have no run.start: cannot tell what was planned")
    start_data = data_of(start)
    end = next((r for r in records if r["kind"] == RUN_END), None)
    # Records after run.end are signatures; the run itself ends with its last other record.
    run_records = [r for r in records if r["kind"] != SIGNATURE]
    targets = tuple(
        Target(
            name=text(t.get("name")),
            kinds=tuple(str(k) for k in t.get("kinds") or ()),
            risk=opt_text(t.get("risk")),
            risk_reason=opt_text(t.get("risk_reason")),
        )
        for t in start_data.get("targets") or ()
        if isinstance(t, Mapping)
    )
    rows = _rows(records)
    return Run(
        change_id=text(start.get("change_id")),
        run_id=text(start.get("run_id")),
        initiator=text(start.get("initiator")),
        actor=text(start.get("actor")),
        started_at=opt_text(start.get("time")),
        ended_at=opt_text((end or run_records[-1]).get("time")),
        start=start_data,
        end=data_of(end) if end is not None else None,
        targets=targets,
        results=_with_missing(records, rows),
        actions=tuple(r for r in rows if type(r) is Action),
        deviations=tuple(r for r in rows if type(r) is Deviation),
        signatures=tuple(r for r in rows if type(r) is Signature),
        skipped_hosts=tuple((r.target, r.reason) for r in rows if type(r) is SkippedHost),
        seal=opt_text(end.get("digest")) if end is not None else None,
    )
