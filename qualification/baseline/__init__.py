"""Baselines: the fingerprint of a qualified state, reading it back from a bundle, and drift.

``fingerprint`` defines the format and its comparison; this module turns ``fingerprint``
records into fingerprints; ``master`` reads them (and a Master-VM's reference) from a bundle
that verifies; ``drift`` compares a live state with a baseline bundle. This package's own
names are vocabulary only (the check library imports them): no bundle is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qualification.baseline.fingerprint import (
    FINGERPRINT_SCHEMA,
    AllowedDifferences,
    Difference,
    Fingerprint,
    SizeRange,
    compare,
    make_fingerprint,
    merge,
)
from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.evidence.kinds import FINGERPRINT

__all__ = [
    "FINGERPRINT_KIND",
    "FINGERPRINT_SCHEMA",
    "AllowedDifferences",
    "Difference",
    "Fingerprint",
    "SizeRange",
    "compare",
    "fingerprint_record",
    "fingerprints_from_records",
    "make_fingerprint",
    "merge",
]

#: The record kind that carries a fingerprint (docs/formats.md; the registry's name).
FINGERPRINT_KIND = FINGERPRINT


def fingerprint_record(fingerprint: Fingerprint) -> dict[str, Any]:
    """The ``fingerprint`` record's data: the fingerprint JSON plus its ``digest``."""
    data = fingerprint.to_json()
    data["digest"] = fingerprint.digest()
    return data


def fingerprints_from_records(
    records: list[tuple[int, Mapping[str, Any]]], *, where: str
) -> dict[str, Fingerprint]:
    """``{subject: fingerprint}`` from ``(line, data)`` of ``fingerprint`` records.

    A later record of the same subject replaces an earlier one.

    Raises:
        EvidenceInvalidError: a record is not a fingerprint or its digest does not match.
    """
    found: dict[str, Fingerprint] = {}
    for line, data in records:
        at = f"{where} line {line}"
        body = {k: v for k, v in data.items() if k != "digest"}
        try:
            fp = Fingerprint.from_json(body, where=at)
        except BadInputError as exc:  # a malformed record makes the baseline unusable
            raise EvidenceInvalidError(str(exc), where=at) from None
        if fp.digest() != data.get("digest"):
            raise EvidenceInvalidError(
                f"fingerprint digest {data.get('digest')!r} is not that of its content "
                f"({fp.digest()})",
                where=at,
            )
        found[fp.subject] = fp
    return found
