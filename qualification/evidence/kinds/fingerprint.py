"""``fingerprint``: a target's fingerprint (docs/formats.md, "Fingerprint") and its digest."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, TypedDict

from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds.base import ChainView, RecordKind


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
    # The whole payload: the digest is recomputed from it (fingerprints are few per run).
    verify_fields = None

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        # A record that disagrees with itself: the baseline would refuse it, so must verify.
        data = record["data"]
        body = {k: v for k, v in data.items() if k != "digest"}
        actual = hashlib.sha256(canonical_bytes(body)).hexdigest()
        if data.get("digest") != actual:
            chain.problem(
                where,
                f"fingerprint digest {str(data.get('digest'))[:16]} is not that of its "
                f"content ({actual[:16]})",
            )


KIND = FingerprintKind()
