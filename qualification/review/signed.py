"""The trust store that signatures are judged with, and a person's signing key.

How a signed document is made and judged is :mod:`qualification.review.documents`; its names
are also importable from here, where the review code has always found them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qualification.config import load_config
from qualification.errors import KeyFileError, TrustError
from qualification.review.documents import (
    check_signer,
    compact_time,
    open_document,
    sign_document,
    signer_fields,
    write_new,
)
from qualification.review.trust_history import trusted_store
from qualification.signing import Ed25519Signer, Signer, TrustStore
from qualification.state import trust_path

__all__ = [
    "check_signer",
    "compact_time",
    "load_trust",
    "load_trust_versioned",
    "open_document",
    "open_personal_signer",
    "sign_document",
    "signer_fields",
    "write_new",
]


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
