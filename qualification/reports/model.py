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
VERDICT_ORDER = ("fail", "error", "not-executed", "waived", "pass")
VERDICTS = ("pass", "fail", "error", "not-executed", "waived")

NOT_FINISHED = "not executed: run did not finish"


@dataclass(frozen=True)
class Result:
    """One test on one target: a ``check.result`` record, or a planned test without one.

    ``recorded`` is False for a planned test that has no ``check.result``; such a test is
    reported as ``error`` with ``reason`` saying why it has no result.
    """

    test_id: str
    title: str
    protocol: str
    target: str
    requirements: tuple[str, ...]
    check: str
    method: str
    expected: Any
    observed: Any
    verdict: str
    reason: str | None
    deviation: str | None
    started: str | None
    finished: str | None
    duration_ms: float | None
    raw: Any
    seq: int | None
    recorded: bool = True

    @property
    def name(self) -> str:
        """``"<test_id> <title>"``, or the id alone when the title is unknown."""
        return f"{self.test_id} {self.title}".strip()

    @property
    def classname(self) -> str:
        return f"{self.target}.{self.protocol}"


@dataclass(frozen=True)
class Action:
    """An ``action`` record: an operation on a target with its state before and after."""

    name: str
    target: str
    before: Any
    after: Any
    verdict: str
    reason: str | None
    started: str | None
    finished: str | None
    seq: int | None


@dataclass(frozen=True)
class Deviation:
    """A deviation as the records show it.

    ``source`` is ``waived result`` (a ``check.result`` carrying a deviation id),
    ``raised`` or ``waiver`` (the ``deviation.raised`` / ``deviation.waiver`` records).
    """

    id: str
    source: str
    test_id: str | None
    target: str | None
    detail: str | None
    time: str | None


@dataclass(frozen=True)
class Signature:
    """A ``signature`` record: who signed the run's seal, when (record time, UTC), and why."""

    name: str
    meaning: str
    time: str | None
    keyid: str
    roles: tuple[str, ...]
    comment: str | None
    seal: str | None


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
        return "pass" if overall == "waived" else overall


def worst(verdicts: Any) -> str:
    """The worst verdict: fail > error > not-executed > waived > pass; ``pass`` when empty.

    ``waived`` ranks above ``pass`` only so a summary shows that a deviation was needed;
    both count as passed for the overall outcome (docs/formats.md).
    """
    present = set(verdicts)
    for verdict in VERDICT_ORDER:
        if verdict in present:
            return verdict
    return "pass"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _opt_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _data(record: Mapping[str, Any]) -> Mapping[str, Any]:
    data = record.get("data")
    if not isinstance(data, Mapping):
        raise BadInputError(
            f"record seq {record.get('seq')} ({record.get('kind')}) has no data object"
        )
    return data


def _deviation_id(value: Any) -> str | None:
    # The format stores the deviation as its id; an object with an ``id`` is read too.
    if isinstance(value, Mapping):
        value = value.get("id")
    return None if value in (None, "") else str(value)


def _seq(record: Mapping[str, Any]) -> int | None:
    seq = record.get("seq")
    return seq if isinstance(seq, int) else None


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


def _result(record: Mapping[str, Any]) -> Result:
    data = _data(record)
    duration = data.get("duration_ms")
    return Result(
        test_id=_text(data.get("test_id")),
        title=_text(data.get("title")),
        protocol=_text(data.get("protocol")) or "IQ",
        target=_text(data.get("target")),
        requirements=tuple(str(r) for r in data.get("requirements") or ()),
        check=_text(data.get("check")),
        method=_text(data.get("method")),
        expected=data.get("expected"),
        observed=data.get("observed"),
        verdict=_text(data.get("verdict")) or "error",
        reason=_opt_text(data.get("reason")),
        deviation=_deviation_id(data.get("deviation")),
        started=_opt_text(data.get("started")),
        finished=_opt_text(data.get("finished")),
        duration_ms=float(duration) if isinstance(duration, (int, float)) else None,
        raw=data.get("raw"),
        seq=_seq(record),
    )


def results_of(given: Records) -> tuple[Result, ...]:
    """Every ``check.result``, then every planned test of ``run.start`` that has none.

    A planned test without a result gets verdict ``error`` and a reason: its host was
    skipped, the run did not finish (no ``run.end``), or no result was recorded. Its title
    and requirements are taken from a result of the same test on another target, if any.
    """
    records = _as_mappings(given)
    results = [_result(r) for r in records if r["kind"] == "check.result"]
    start = next((r for r in records if r["kind"] == "run.start"), None)
    if start is None:
        return tuple(results)
    finished = any(r["kind"] == "run.end" for r in records)
    skipped = {
        _text(_data(r).get("target")): _text(_data(r).get("reason"))
        for r in records
        if r["kind"] == "host.skipped"
    }
    seen = {(r.test_id, r.target) for r in results}
    known = {r.test_id: r for r in results}
    missing: list[Result] = []
    for planned in _data(start).get("planned") or ():
        if not isinstance(planned, Mapping):
            continue
        test_id, target = _text(planned.get("test_id")), _text(planned.get("target"))
        if (test_id, target) in seen:
            continue
        seen.add((test_id, target))
        if target in skipped:
            reason = f"not executed: host skipped: {skipped[target]}"
        elif not finished:
            reason = NOT_FINISHED
        else:
            reason = "not executed: no result was recorded"
        like = known.get(test_id)
        missing.append(
            Result(
                test_id=test_id,
                title=_text(planned.get("title")) or (like.title if like else ""),
                protocol=_text(planned.get("protocol")) or (like.protocol if like else "IQ"),
                target=target,
                requirements=tuple(str(x) for x in planned.get("requirements") or ())
                or (like.requirements if like else ()),
                check=like.check if like else "",
                method="",
                expected=like.expected if like else None,
                observed=None,
                verdict="error",
                reason=reason,
                deviation=None,
                started=None,
                finished=None,
                duration_ms=None,
                raw=None,
                seq=None,
                recorded=False,
            )
        )
    return tuple(results + missing)


def _deviations(records: Sequence[Mapping[str, Any]]) -> tuple[Deviation, ...]:
    found: list[Deviation] = []
    for record in records:
        kind = record["kind"]
        if kind == "check.result":
            data = _data(record)
            dev_id = _deviation_id(data.get("deviation"))
            if dev_id is not None:
                found.append(
                    Deviation(
                        id=dev_id,
                        source=f"{_text(data.get('verdict'))} result",
                        test_id=_opt_text(data.get("test_id")),
                        target=_opt_text(data.get("target")),
                        detail=_opt_text(data.get("reason")),
                        time=_opt_text(record.get("time")),
                    )
                )
        elif kind in ("deviation.raised", "deviation.waiver"):
            # Reserved kinds (docs/formats.md): read the obvious fields, tolerate others.
            data = _data(record)
            detail = next(
                (
                    str(data[key])
                    for key in ("description", "justification", "reason", "detail")
                    if data.get(key)
                ),
                None,
            )
            found.append(
                Deviation(
                    id=_text(data.get("id") or data.get("deviation_id") or "?"),
                    source=kind.split(".", 1)[1],
                    test_id=_opt_text(data.get("test_id")),
                    target=_opt_text(data.get("target")),
                    detail=detail,
                    time=_opt_text(record.get("time")),
                )
            )
    return tuple(found)


def load_run(given: Records) -> Run:
    """Arrange a run's decoded records (docs/formats.md) for reporting.

    Raises:
        BadInputError: no records, no ``run.start``, or a record that is not a decoded
            vqual record.
    """
    if not given:
        raise BadInputError("no records to report: a bundle starts with run.start")
    records = _as_mappings(given)
    start = next((r for r in records if r["kind"] == "run.start"), None)
    if start is None:
        raise BadInputError("the records have no run.start: cannot tell what was planned")
    start_data = _data(start)
    end = next((r for r in records if r["kind"] == "run.end"), None)
    # Records after run.end are signatures; the run itself ends with its last other record.
    run_records = [r for r in records if r["kind"] != "signature"]
    targets = tuple(
        Target(
            name=_text(t.get("name")),
            kinds=tuple(str(k) for k in t.get("kinds") or ()),
            risk=_opt_text(t.get("risk")),
            risk_reason=_opt_text(t.get("risk_reason")),
        )
        for t in start_data.get("targets") or ()
        if isinstance(t, Mapping)
    )
    actions = tuple(
        Action(
            name=_text(_data(r).get("name")),
            target=_text(_data(r).get("target")),
            before=_data(r).get("before"),
            after=_data(r).get("after"),
            verdict=_text(_data(r).get("verdict")),
            reason=_opt_text(_data(r).get("reason")),
            started=_opt_text(_data(r).get("started")),
            finished=_opt_text(_data(r).get("finished")),
            seq=_seq(r),
        )
        for r in records
        if r["kind"] == "action"
    )
    signatures = tuple(
        Signature(
            name=_text(_data(r).get("name")),
            meaning=_text(_data(r).get("meaning")),
            time=_opt_text(r.get("time")),
            keyid=_text(_data(r).get("keyid") or r.get("actor")),
            roles=tuple(str(x) for x in _data(r).get("roles") or ()),
            comment=_opt_text(_data(r).get("comment")) or None,
            seal=_opt_text(_data(r).get("seal")),
        )
        for r in records
        if r["kind"] == "signature"
    )
    skipped = tuple(
        (_text(_data(r).get("target")), _text(_data(r).get("reason")))
        for r in records
        if r["kind"] == "host.skipped"
    )
    return Run(
        change_id=_text(start.get("change_id")),
        run_id=_text(start.get("run_id")),
        initiator=_text(start.get("initiator")),
        actor=_text(start.get("actor")),
        started_at=_opt_text(start.get("time")),
        ended_at=_opt_text((end or run_records[-1]).get("time")),
        start=start_data,
        end=_data(end) if end is not None else None,
        targets=targets,
        results=results_of(records),
        actions=actions,
        deviations=_deviations(records),
        signatures=signatures,
        skipped_hosts=skipped,
        seal=_opt_text(end.get("digest")) if end is not None else None,
    )
