"""``run.end``: the seal. The seal digest of a run is the SHA-256 of this record's line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypedDict

from qualification.evidence.kinds.base import AuditLine, ChainView, RecordKind


class RunEndData(TypedDict):
    """docs/formats.md, ``run.end``; ``counts`` has every verdict (``qualification.verdict``)."""

    manifest_digest: str
    counts: dict[str, int]
    planned: int
    executed: int
    verdict: str


class RunEnd(RecordKind):
    name = "run.end"
    payload = RunEndData
    appendable = False  # BundleWriter.seal()
    verify_fields = None

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        data = record["data"]
        chain.end_seen = True
        res = chain.res
        res.seal_digest = digest
        md = data.get("manifest_digest")
        if not isinstance(md, str):
            chain.problem(where, "run.end lacks manifest_digest")
        chain.manifest_digest = md if isinstance(md, str) else None
        counts = data.get("counts")
        if isinstance(counts, dict):
            res.counts = {str(k): v for k, v in counts.items() if isinstance(v, int)}
        planned, executed = data.get("planned"), data.get("executed")
        res.planned = planned if isinstance(planned, int) else len(chain.planned)
        res.executed = executed if isinstance(executed, int) else None
        verdict = data.get("verdict")
        res.verdict = verdict if isinstance(verdict, str) else None

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine:
        data = record["data"]
        counts = json.dumps(data.get("counts"), sort_keys=True)
        return AuditLine(
            self.name,
            f"verdict {data.get('verdict')}, counts {counts}",
            who=str(record["initiator"]),
        )


KIND = RunEnd()
