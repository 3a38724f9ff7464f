"""OQ self check of the inspector's folder (VQ-46): the trust store's keys as exported in
securesystemslib's format verify a scratch run's records with securesystemslib's own DSSE
code, and a record signed again by a key outside the store does not verify with them."""

from __future__ import annotations

import json
from collections.abc import Callable

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import Key, SSlibKey  # type: ignore[attr-defined]  # no __all__

from qualification.evidence.bundle import RECORDS
from qualification.review.inspector import securesystemslib_keys
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch
from qualification.signing import Ed25519Signer
from qualification.signing.dsse import parse_envelope, sign_envelope

WANT = {"honest_lines_verified": "all", "foreign_key": "refused"}


def _verified_by_exported_keys(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    exported = securesystemslib_keys(s.trust)["keys"]
    keys: list[Key] = [SSlibKey.from_dict(k["keyid"], dict(k["key"])) for k in exported]
    lines = (s.bundle() / RECORDS).read_bytes().splitlines()
    verified = 0
    for line in lines:
        try:
            Envelope.from_dict(json.loads(line)).verify(keys, 1)
            verified += 1
        except VerificationError:
            pass
    foreign = sign_envelope(parse_envelope(lines[0]).payload, Ed25519Signer.generate())
    try:
        Envelope.from_dict(json.loads(foreign.to_bytes())).verify(keys, 1)
        foreign_outcome = "accepted"
    except VerificationError:
        foreign_outcome = "refused"
    got = {
        "honest_lines_verified": "all" if verified == len(lines) else f"{verified}/{len(lines)}",
        "foreign_key": foreign_outcome,
    }
    return Outcome(got == WANT, got)


def inspector_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: the inspector's exported keys let securesystemslib check the signatures alone."""
    return [
        SelfCheck(
            "ST-OQ-21",
            "the trust store's keys exported for inspectors verify the records with "
            "securesystemslib alone, and refuse a record signed by another key",
            "OQ",
            "VQ-46",
            "a scratch run's record envelopes verified by securesystemslib's DSSE code with "
            "the keys in securesystemslib's format; its first record re-signed by a new key",
            {"op": "equals", "value": WANT},
            lambda: _verified_by_exported_keys(scratch),
        )
    ]
