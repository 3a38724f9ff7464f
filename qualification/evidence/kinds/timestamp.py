"""``timestamp``: an RFC 3161 token over the line before it (format v2).

It follows ``run.end`` and each ``signature`` when the trust store names a TSA. The token
covers the SHA-256 of the previous line as written (the envelope's bytes without their
newline), which is also this record's ``prev``, so the token is bound to the chain. The
token's own checks (digest, TSA chain, time window) need the record before it and the trust
store's TSA roots: :mod:`qualification.evidence.trusted_time` makes them once the whole
chain is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from qualification.evidence.kinds.base import (
    AuditLine,
    ChainView,
    RecordKind,
    data_of,
    opt_text,
    text,
)


class TimestampData(TypedDict):
    """docs/formats.md, ``timestamp``. ``token`` and ``gen_time`` are None and ``error`` says
    why when the TSA gave no token (the run is still sealed: "no trusted time")."""

    stamps: int
    digest: str
    tsa: str
    token: str | None
    gen_time: str | None
    error: str | None


@dataclass(frozen=True)
class TrustedTime:
    """A ``timestamp`` record as a report row: which record the TSA vouched for, and when."""

    stamps: int | None
    tsa: str
    gen_time: str | None
    error: str | None


class TimestampKind(RecordKind):
    name = "timestamp"
    payload = TimestampData
    appendable = False  # BundleWriter.seal() and append_signature()
    after_run_end = True
    verify_fields = None

    def signer_role(self, chain: ChainView, where: str, data: Mapping[str, Any]) -> str | None:
        # Signed by whoever signed the record it stamps (checked with the token, once the
        # whole chain is read); that record's own rule judges the key.
        return None

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        data = record["data"]
        if data.get("digest") != record["prev"]:
            chain.problem(where, "timestamp digest is not the previous line's SHA-256")
        if data.get("stamps") != record["seq"] - 1:
            chain.problem(where, f"timestamp stamps seq {data.get('stamps')!r}, not the one before")

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        data = data_of(record)
        stamps = data.get("stamps")
        return (
            TrustedTime(
                stamps=stamps if isinstance(stamps, int) else None,
                tsa=text(data.get("tsa")),
                gen_time=opt_text(data.get("gen_time")),
                error=opt_text(data.get("error")),
            ),
        )

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        data = record["data"]
        if data.get("token"):
            detail = f"RFC 3161 token from {data.get('tsa')} at {data.get('gen_time')}"
        else:
            detail = f"no trusted time from {data.get('tsa')}: {data.get('error')}"
        return AuditLine(self.name, f"seq {data.get('stamps')}: {detail}")


KIND = TimestampKind()
