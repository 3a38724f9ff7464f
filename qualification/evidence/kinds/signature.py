"""``signature``: an e-signature over the run's seal, appended after ``run.end``."""

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

#: Signature meanings and the trust-store role each needs.
MEANING_ROLE = {
    "authored": "executor",
    "reviewed": "reviewer",
    "approved": "approver",
    "rejected": "approver",
}


class SignatureData(TypedDict):
    """docs/formats.md, ``signature``."""

    meaning: str
    seal: str
    name: str
    roles: list[str]
    comment: str | None
    keyid: str


@dataclass(frozen=True)
class Signature:
    """A ``signature`` record as a report row: who signed the run's seal, when (record
    time, UTC), and why."""

    name: str
    meaning: str
    time: str | None
    keyid: str
    roles: tuple[str, ...]
    comment: str | None
    seal: str | None


class SignatureKind(RecordKind):
    name = "signature"
    payload = SignatureData
    appendable = False  # append_signature()
    after_run_end = True
    verify_fields = None

    def signer_role(self, chain: ChainView, where: str, data: Mapping[str, Any]) -> str | None:
        meaning = data.get("meaning")
        role = MEANING_ROLE.get(meaning) if isinstance(meaning, str) else None
        if role is None:
            chain.problem(
                where,
                f"signature meaning {meaning!r} is not one of {', '.join(sorted(MEANING_ROLE))}",
            )
        return role

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        data = record["data"]
        res = chain.res
        if data.get("seal") != res.seal_digest:
            chain.problem(where, "signature does not sign this bundle's seal digest")
        if keyid is not None and data.get("keyid") != keyid:
            chain.problem(where, "signature keyid field differs from the signing key")
        key = chain.trust.get(keyid) if keyid else None
        if key is not None:
            if data.get("name") != key.name:
                chain.problem(
                    where, f"printed name {data.get('name')!r} is not the key holder {key.name!r}"
                )
            if data.get("meaning") == "approved" and (
                key.identity in chain.executor_identities or key.identity == chain.initiator
            ):
                chain.problem(where, f"{key.identity} executed this run and may not approve it")
        res.signatures.append(
            {
                **data,
                "time": record["time"],
                "seq": record["seq"],
                "identity": key.identity if key else None,
            }
        )

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        data = data_of(record)
        return (
            Signature(
                name=text(data.get("name")),
                meaning=text(data.get("meaning")),
                time=opt_text(record.get("time")),
                keyid=text(data.get("keyid") or record.get("actor")),
                roles=tuple(str(x) for x in data.get("roles") or ()),
                comment=opt_text(data.get("comment")) or None,
                seal=opt_text(data.get("seal")),
            ),
        )

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        data = record["data"]
        return AuditLine(
            f"signature.{data.get('meaning')}",
            str(data.get("comment") or ""),
            who=str(data.get("name") or signer),
        )


KIND = SignatureKind()
