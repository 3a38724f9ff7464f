"""What the report says of trusted time (docs/formats.md, "Trusted time").

The copy of the report sealed with the run is rendered before ``run.end``, so it can only
say which TSA will stamp the seal (``run.start``'s ``trust.tsa``) or that none will; a report
rendered later (``vqual report``) also shows the genTime of each token the records carry.
Whether a token holds is the verifier's answer (``vqual verify``), not the report's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qualification.evidence.kinds import REGISTRY, TIMESTAMP
from qualification.evidence.kinds.timestamp import TrustedTime
from qualification.reports.model import Records

NO_TRUSTED_TIME = "no trusted time"


def _fields(record: Any) -> Mapping[str, Any]:
    if isinstance(record, Mapping):
        return record
    return {"kind": record.kind, "data": record.data}


def trusted_time_text(start: Mapping[str, Any], records: Records) -> str:
    """One line for the report's summary."""
    rows = [
        row
        for record in records
        if _fields(record).get("kind") == TIMESTAMP
        for row in REGISTRY[TIMESTAMP].report_rows(_fields(record))
        if isinstance(row, TrustedTime)
    ]
    if rows:
        return "; ".join(
            f"seq {r.stamps}: RFC 3161 token from {r.tsa}, {r.gen_time}" if r.gen_time
            else f"seq {r.stamps}: {NO_TRUSTED_TIME} ({r.tsa} gave no token: {r.error})"
            for r in rows
        )
    trust = start.get("trust")
    tsa = trust.get("tsa") if isinstance(trust, Mapping) else None
    if tsa:
        return (f"the seal and each signature are time-stamped by TSA {tsa} (RFC 3161; the "
                "tokens follow run.end, vqual verify checks them)")
    return f"{NO_TRUSTED_TIME} (the trust store names no TSA)"
