"""Signed documents in the state directory (approvals, waivers, trust store versions).

A document is a DSSE envelope (canonical JSON, one signature) whose payload is a canonical JSON
object carrying the signing ``time``; it is judged against the trust store like a record: the
signature must verify with a trusted key that was valid at that time and holds the role.
This module imports no other review module, so the trust history and the review code can both
use it (:mod:`qualification.review.signed` loads the trust store with that history).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from qualification.errors import TrustError
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.verify import open_signed_document
from qualification.signing import Signer, TrustedKey, TrustStore
from qualification.signing.dsse import sign_envelope
from qualification.timeutil import utc_now


def check_signer(
    trust: TrustStore, keyid: str, role: str, when: datetime | None = None
) -> TrustedKey:
    """The trust entry of ``keyid`` if it is trusted, valid at ``when`` (now) and holds ``role``.

    Raises:
        TrustError: untrusted, not yet valid, expired or revoked key, or the role is missing.
    """
    moment = when or utc_now()
    key = trust.get(keyid)
    if key is None:
        raise TrustError(f"key {keyid[:16]} is not in the trust store", where=str(trust.path))
    # By the trust store version in force at that moment when the store is a TrustTimeline.
    ok, reason = trust.key_status_at(keyid, moment)
    if not ok:
        raise TrustError(f"{reason}; it cannot sign", where=str(trust.path))
    if not trust.role_at(keyid, role, moment):
        raise TrustError(
            f"key {keyid[:16]} ({key.name}) does not hold the {role} role", where=str(trust.path)
        )
    return key


#: Judging a stored envelope lives with the bundle verifier, which judges the waivers a bundle
#: carries the same way; these names stay for the review code.
open_document = open_signed_document


def signer_fields(key: TrustedKey, time: str, comment: str | None) -> dict[str, Any]:
    """What every signed document says about its signing: the UTC ``time``, the signer's
    printed ``name``, ``identity``, ``roles`` and ``keyid`` (from the trust store) and a
    ``comment``; :func:`open_document` judges the time, key id and name."""
    return {
        "time": time,
        "name": key.name,
        "identity": key.identity,
        "roles": list(key.roles),
        "keyid": key.keyid,
        "comment": comment,
    }


def sign_document(signer: Signer, payload_type: str, payload: dict[str, Any]) -> bytes:
    """The canonical envelope bytes (no newline) of ``payload`` signed by ``signer``."""
    return sign_envelope(canonical_bytes(payload), signer, payload_type).to_bytes()


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file (never over an existing one) and make it durable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def compact_time(text: str) -> str:
    """A record time as a file-name part: ``20260301T100000.123456Z``."""
    return text.replace("-", "").replace(":", "")
