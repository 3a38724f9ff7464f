"""``fingerprint``: a target's fingerprint (docs/formats.md, "Fingerprint") and its digest."""

from __future__ import annotations

from typing import Any, TypedDict

from qualification.evidence.kinds.base import RecordKind


class FingerprintData(TypedDict):
    """The fingerprint JSON (``vqual.fingerprint/v1``) plus ``digest``, the SHA-256 of its
    canonical JSON without ``digest``; a reader recomputes it."""

    schema: str
    subject: str
    kind: str
    vm: dict[str, Any] | None
    guest: dict[str, Any] | None
    identity: dict[str, Any]
    generalised: dict[str, Any]
    digests: dict[str, Any]
    digest: str


class FingerprintKind(RecordKind):
    # A state description, not an act and not a test: no report row, no audit line; the
    # baseline reads it (qualification.baseline.fingerprints_of).
    name = "fingerprint"
    payload = FingerprintData


KIND = FingerprintKind()
