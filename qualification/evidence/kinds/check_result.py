"""``check.result``: one test on one target, with what was expected and observed."""

# No postponed annotations here: TypedDict reads NotRequired[...] from evaluated ones.
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from qualification.evidence.kinds.base import (
    ChainView,
    Deviation,
    RecordKind,
    data_of,
    deviation_id,
    opt_text,
    seq_of,
    text,
)
from qualification.verdict import Verdict


class CheckResultData(TypedDict):
    """docs/formats.md, ``check.result``. ``deviation`` only with ``waived``; ``measured``
    only for a test whose observed value comes out of a run (an OQ step); ``observation_ms``
    only when the probe measured its observation (absent in records written before it)."""

    test_id: str
    title: str
    protocol: str
    requirements: list[str]
    target: str
    check: str
    method: str
    expected: dict[str, Any]
    observed: Any
    verdict: str
    reason: str | None
    raw: str | dict[str, str] | None
    started: str
    finished: str
    duration_ms: float
    deviation: NotRequired[str | None]
    measured: NotRequired[dict[str, Any]]
    observation_ms: NotRequired[float]


@dataclass(frozen=True)
class Result:
    """One test on one target (a report row): a ``check.result`` record, or a planned test
    without one.

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
    measured: Any = None
    #: The probe's own time for this test's observation; None when not recorded.
    observation_ms: float | None = None

    @property
    def name(self) -> str:
        """``"<test_id> <title>"``, or the id alone when the title is unknown."""
        return f"{self.test_id} {self.title}".strip()

    @property
    def classname(self) -> str:
        return f"{self.target}.{self.protocol}"


def planned_test(test_id: object, planned_ids: set[str]) -> bool:
    """Whether run.start planned ``test_id``: as it is, or as the planned test a difference
    result belongs to (drift, clone and conversion runs record one result per difference,
    ``<planned id>:<what>:<where>``)."""
    if not isinstance(test_id, str):
        return False
    if test_id in planned_ids:
        return True
    parts = test_id.split(":")
    return any(":".join(parts[:n]) in planned_ids for n in range(1, len(parts)))


class CheckResult(RecordKind):
    name = "check.result"
    payload = CheckResultData
    verify_fields = ("test_id", "target", "protocol", "raw", "verdict", "deviation")

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        data = record["data"]
        test_id = data.get("test_id")
        if not planned_test(test_id, chain.planned_ids):
            # A result run.start did not plan would add a test nobody approved or selected
            # (slices plan their own share; a join plans nothing and holds no results).
            chain.problem(where, f"check.result for test {test_id!r}, which "
                          "run.start did not plan")
        if data.get("verdict") == Verdict.WAIVED:
            # Judged with the waiver records at the end (judge_waivers).
            chain.waiver_entries.append(
                (where, self.name, record["time"], record["change_id"], data)
            )
        chain.done.add((data.get("test_id"), data.get("target")))
        raw = data.get("raw")
        if isinstance(raw, dict):
            f, sha = raw.get("file"), raw.get("sha256")
            if not isinstance(f, str) or not isinstance(sha, str) or f != f"raw/{sha}.txt":
                chain.problem(where, "raw reference must be {sha256, file: raw/<sha256>.txt}")
            else:
                chain.raw_refs.append((where, f, sha))

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        result = _result(record)
        if result.deviation is None:
            return (result,)
        data = data_of(record)
        return (
            result,
            Deviation(
                id=result.deviation,
                source=f"{text(data.get('verdict'))} result",
                test_id=opt_text(data.get("test_id")),
                target=opt_text(data.get("target")),
                detail=result.reason,
                time=opt_text(record.get("time")),
            ),
        )

    @staticmethod
    def result(record: Mapping[str, Any]) -> Result:
        """The record as a report row."""
        return _result(record)


def _result(record: Mapping[str, Any]) -> Result:
    """A ``check.result`` record as a report row."""
    data = data_of(record)
    duration = data.get("duration_ms")
    return Result(
        test_id=text(data.get("test_id")),
        title=text(data.get("title")),
        protocol=text(data.get("protocol")) or "IQ",
        target=text(data.get("target")),
        requirements=tuple(str(r) for r in data.get("requirements") or ()),
        check=text(data.get("check")),
        method=text(data.get("method")),
        expected=data.get("expected"),
        observed=data.get("observed"),
        verdict=text(data.get("verdict")) or Verdict.ERROR.value,
        reason=opt_text(data.get("reason")),
        deviation=deviation_id(data.get("deviation")),
        started=opt_text(data.get("started")),
        finished=opt_text(data.get("finished")),
        duration_ms=float(duration) if isinstance(duration, (int, float)) else None,
        raw=data.get("raw"),
        seq=seq_of(record),
        measured=data.get("measured"),
        observation_ms=_milliseconds(data.get("observation_ms")),
    )


def _milliseconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


KIND = CheckResult()
