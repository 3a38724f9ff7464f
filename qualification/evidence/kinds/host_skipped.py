"""``host.skipped``: a target the run did not reach, with the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

from qualification.evidence.kinds.base import AuditLine, RecordKind, data_of, text


class HostSkippedData(TypedDict):
    """docs/formats.md, ``host.skipped``."""

    target: str
    reason: str


class SkippedHost(NamedTuple):
    """A skipped host as a report row: (target, reason)."""

    target: str
    reason: str


class HostSkipped(RecordKind):
    name = "host.skipped"
    payload = HostSkippedData

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        data = data_of(record)
        return (SkippedHost(text(data.get("target")), text(data.get("reason"))),)

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        return AuditLine(self.name, str(record["data"].get("reason") or ""))


KIND = HostSkipped()
