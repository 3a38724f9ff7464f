"""Signed documents in the state directory (approvals, waivers) and who may sign what.

A document is a DSSE envelope (canonical JSON, one signature) whose payload is a canonical JSON
object carrying the signing ``time``; it is judged against the trust store like a record: the
signature must verify with a trusted key that was valid at that time and holds the role.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from qualification.errors import EvidenceInvalidError, KeyFileError, TrustError
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.records import parse_time
from qualification.signing import Ed25519Signer, Signer, TrustedKey, TrustStore
from qualification.signing.dsse import parse_envelope, sign_envelope, verify_envelope
from qualification.state import trust_path
from qualification.timeutil import utc_now


def load_trust(state_dir: Path) -> TrustStore:
    """The state directory's trust store, checked against its signed history.

    Raises:
        TrustError: there is no trust store, it is malformed, it differs from its latest
            signed version (an unsigned change or tampering), its history is broken, or it is
            unsigned while ``config.yaml`` sets ``require_signed_trust``.
    """
    return load_trust_versioned(state_dir)[0]


def load_trust_versioned(state_dir: Path) -> tuple[TrustStore, int | None]:
    """:func:`load_trust` and the signed version it is (None: not signed)."""
    from qualification.config import load_config
    from qualification.review.trust_history import trusted_store

    path = trust_path(state_dir)
    if not path.exists():
        raise TrustError(f"no trust store at {path}; signatures are judged against it")
    return trusted_store(state_dir, require_signed=load_config(state_dir).require_signed_trust)


def open_personal_signer(key_file: Path, passphrase_reader: Callable[[], bytes]) -> Signer:
    """Open a person's signing key: both components, the key file and its passphrase.

    Raises:
        KeyFileError: the key is missing, not passphrase-protected, has loose permissions,
            or the passphrase is wrong.
    """
    try:
        head = key_file.read_bytes()[:64]
    except OSError as exc:
        raise KeyFileError(f"key file {key_file} cannot be read: {exc.strerror}") from None
    if b"ENCRYPTED" not in head:
        raise KeyFileError(
            f"key file {key_file} is not passphrase-protected; an e-signature needs a "
            "personal key and its passphrase"
        )
    return Ed25519Signer.from_file(key_file, passphrase_reader())


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
    ok, reason = key.status_at(moment)
    if not ok:
        raise TrustError(f"{reason}; it cannot sign", where=str(trust.path))
    if role not in key.roles:
        raise TrustError(
            f"key {keyid[:16]} ({key.name}) does not hold the {role} role", where=str(trust.path)
        )
    return key


def sign_document(signer: Signer, payload_type: str, payload: dict[str, Any]) -> bytes:
    """The canonical envelope bytes (no newline) of ``payload`` signed by ``signer``."""
    return sign_envelope(canonical_bytes(payload), signer, payload_type).to_bytes()


@dataclass(frozen=True)
class SignedDocument:
    """A document whose signature, signer validity and role have been checked."""

    payload: dict[str, Any]
    keyid: str
    key: TrustedKey
    digest: str  # SHA-256 of the envelope bytes as stored (without newline)


def open_document(
    data: bytes, payload_type: str, trust: TrustStore, role: str, *, where: str
) -> SignedDocument:
    """Check one stored envelope against the trust store.

    Raises:
        EvidenceInvalidError: malformed, wrong type, a signature that does not verify with a
            trusted key, a key not valid at the document's time, or without ``role``.
    """
    line = data.rstrip(b"\n")
    env = parse_envelope(line, where=where)
    if env.payload_type != payload_type:
        raise EvidenceInvalidError(
            f"payload type {env.payload_type!r} is not {payload_type}", where=where
        )
    if len(env.signatures) != 1:
        raise EvidenceInvalidError("must carry exactly one signature", where=where)
    keyid = verify_envelope(env, trust.public_keys())
    if keyid is None:
        raise EvidenceInvalidError(
            f"signature by key {env.signatures[0].keyid[:16]} does not verify with any key in "
            "the trust store",
            where=where,
        )
    try:
        payload = json.loads(env.payload)
    except (ValueError, UnicodeDecodeError):
        raise EvidenceInvalidError("payload is not JSON", where=where) from None
    if not isinstance(payload, dict) or canonical_bytes(payload) != env.payload:
        raise EvidenceInvalidError("payload is not a canonical JSON object", where=where)
    when = parse_time(payload.get("time"))
    if when is None:
        raise EvidenceInvalidError("payload time is missing or not in record form", where=where)
    if payload.get("keyid") != keyid:
        raise EvidenceInvalidError("payload keyid differs from the signing key", where=where)
    key = trust.get(keyid)
    assert key is not None  # verify_envelope only answers with trusted keys
    ok, reason = key.status_at(when)
    if not ok:
        raise EvidenceInvalidError(f"{reason} (signed {payload['time']})", where=where)
    if role not in key.roles:
        raise EvidenceInvalidError(f"key {keyid[:16]} does not hold the {role} role", where=where)
    if payload.get("name") != key.name:
        raise EvidenceInvalidError(
            f"printed name {payload.get('name')!r} is not the key holder {key.name!r}", where=where
        )
    return SignedDocument(payload, keyid, key, hashlib.sha256(line).hexdigest())


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
