"""``deviation.raised``: a rolling patch halted; what failed, where and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from qualification.evidence.kinds.base import RecordKind, deviation_row


class DeviationRaisedData(TypedDict):
    """docs/formats.md, ``deviation.raised``."""

    step: str
    test_id: str | None
    target: str
    reason: str
    run_id: str
    state: dict[str, Any] | None


class DeviationRaised(RecordKind):
    name = "deviation.raised"
    payload = DeviationRaisedData

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        return (deviation_row(record, "raised"),)


KIND = DeviationRaised()
