"""Ed25519 keys: the :class:`Signer` interface, key files and key ids.

Private keys are PKCS#8 PEM, encrypted with a passphrase for people (the second signing
component), mode 0600 or stricter. The signer is an interface so a KMS or HSM can stand in for
the key file; everything that signs takes a :class:`Signer`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from qualification.errors import KeyFileError


@runtime_checkable
class Signer(Protocol):
    """Something that signs bytes with a key known by ``keyid``."""

    @property
    def keyid(self) -> str:
        """Lowercase hex SHA-256 of the raw public key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the signature over ``data``."""
        ...


def keyid_of(public_key: Ed25519PublicKey) -> str:
    """Key id: lowercase hex SHA-256 of the raw 32-byte Ed25519 public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM text of ``public_key``."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key_pem(pem: str | bytes, *, where: str | None = None) -> Ed25519PublicKey:
    """Parse an Ed25519 public key from PEM (text before the PEM block is ignored).

    Raises:
        KeyFileError: not PEM, or not an Ed25519 key.
    """
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    begin = data.find(b"-----BEGIN")
    try:
        key = serialization.load_pem_public_key(data[max(begin, 0) :])
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"not a PEM public key: {exc}", where=where) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError("public key is not Ed25519", where=where)
    return key


class Ed25519Signer:
    """A :class:`Signer` holding an Ed25519 private key in memory."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self._keyid = keyid_of(self.public_key)

    @property
    def keyid(self) -> str:
        return self._keyid

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_pem(self) -> str:
        return public_key_pem(self.public_key)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """A fresh in-memory key (tests, throwaway demo keys)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], passphrase: bytes | None) -> Ed25519Signer:
        """Load a PKCS#8 PEM private key file.

        Args:
            path: the key file; refused unless its mode is 0600 or stricter.
            passphrase: the key's passphrase, or None for an unencrypted (service) key.

        Raises:
            KeyFileError: missing or unreadable file, loose mode, wrong or missing passphrase,
                not an Ed25519 private key.
        """
        p = Path(path)
        try:
            st = p.stat()
        except OSError as exc:
            raise KeyFileError(f"key file {p} cannot be read: {exc.strerror}") from None
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {p} is readable by group or others (mode {mode:04o}); chmod 600 it"
            )
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"key file {p} cannot be read: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError:
            # cryptography raises TypeError when a passphrase is missing or superfluous.
            need = "needs a passphrase" if passphrase is None else "is not encrypted"
            raise KeyFileError(f"key file {p} {need}") from None
        except ValueError:
            raise KeyFileError(f"key file {p}: wrong passphrase or not a PEM private key") from None
        except UnsupportedAlgorithm:
            raise KeyFileError(f"key file {p}: unsupported key algorithm") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"key file {p} is not an Ed25519 private key")
        return cls(key)


def create_key(
    path: str | os.PathLike[str], *, passphrase: bytes | None, name: str, identity: str
) -> str:
    """Generate an Ed25519 key, write it to ``path`` (mode 0600) and ``<path>.pub``.

    The private key is PKCS#8 PEM, encrypted with ``passphrase`` unless it is None (service
    keys). ``<path>.pub`` holds a comment naming ``name``, ``identity`` and the key id, then the
    public key PEM, ready to paste into ``trust.yaml``.

    Returns:
        The key id.

    Raises:
        KeyFileError: either file exists (never overwritten), empty passphrase, or the
            directory is not writable.
    """
    p = Path(path)
    pub = p.with_name(p.name + ".pub")
    if passphrase is not None and len(passphrase) == 0:
        raise KeyFileError("empty passphrase; pass None for an unencrypted service key")
    for target in (p, pub):
        if target.exists() or target.is_symlink():
            raise KeyFileError(f"key file {target} exists; refusing to overwrite it")
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    keyid = keyid_of(key.public_key())
    header = (
        f"# vqual Ed25519 public key\n# name: {_one_line(name)}\n"
        f"# identity: {_one_line(identity)}\n# keyid: {keyid}\n"
    )
    _write_exclusive(p, private_pem, 0o600)
    try:
        _write_exclusive(pub, (header + public_key_pem(key.public_key())).encode("utf-8"), 0o644)
    except KeyFileError:
        p.unlink()
        raise
    return keyid


def _one_line(text: str) -> str:
    # One line, ASCII only: the .pub file is read as ASCII text (PEM is ASCII).
    return " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise KeyFileError(f"key file {path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # exact mode whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
