"""``action``: an operation on a target with its state before and after."""

# No postponed annotations here: TypedDict reads NotRequired[...] from evaluated ones.
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from qualification.evidence.kinds.base import (
    AuditLine,
    RecordKind,
    data_of,
    opt_text,
    seq_of,
    text,
)


class ActionData(TypedDict):
    """docs/formats.md, ``action``; a rolling patch's steps add ``detail`` (what the step
    did) and may add step-specific fields."""

    name: str
    target: str
    before: Any
    after: Any
    verdict: str
    reason: str | None
    started: str
    finished: str
    detail: NotRequired[Any]


@dataclass(frozen=True)
class Action:
    """An ``action`` record as a report row."""

    name: str
    target: str
    before: Any
    after: Any
    verdict: str
    reason: str | None
    started: str | None
    finished: str | None
    seq: int | None


class ActionKind(RecordKind):
    name = "action"
    payload = ActionData

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        data = data_of(record)
        return (
            Action(
                name=text(data.get("name")),
                target=text(data.get("target")),
                before=data.get("before"),
                after=data.get("after"),
                verdict=text(data.get("verdict")),
                reason=opt_text(data.get("reason")),
                started=opt_text(data.get("started")),
                finished=opt_text(data.get("finished")),
                seq=seq_of(record),
            ),
        )

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        data = record["data"]
        detail = f"{data.get('name')}: {data.get('verdict')}"
        if data.get("reason"):
            detail += f" ({data.get('reason')})"
        return AuditLine(self.name, detail)


KIND = ActionKind()
