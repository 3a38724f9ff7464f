"""Key files and key ids (DSSE envelopes: test_dsse.py)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from qualification.errors import KeyFileError
from qualification.signing import (
    Ed25519Signer,
    Signer,
    create_key,
    keyid_of,
    load_public_key_pem,
)


def test_create_key_writes_0600_private_and_public_file(tmp_path: Path) -> None:
    key = tmp_path / "jane.pem"
    keyid = create_key(
        key, passphrase=b"correct horse", name="Jane Doe", identity="jane@example.com"
    )
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    pub_text = (tmp_path / "jane.pem.pub").read_text()
    assert "# name: Jane Doe" in pub_text and f"# keyid: {keyid}" in pub_text
    pub = load_public_key_pem(pub_text)
    assert keyid_of(pub) == keyid
    signer = Ed25519Signer.from_file(key, b"correct horse")
    assert signer.keyid == keyid
    pub.verify(signer.sign(b"data"), b"data")


def test_keyid_is_sha256_of_raw_public_key() -> None:
    signer = Ed25519Signer.generate()
    raw = signer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert len(raw) == 32
    assert signer.keyid == hashlib.sha256(raw).hexdigest()
    assert isinstance(signer, Signer)


def test_create_key_refuses_to_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    create_key(key, passphrase=None, name="CI", identity="ci")
    before = key.read_bytes()
    with pytest.raises(KeyFileError, match="exists; refusing to overwrite"):
        create_key(key, passphrase=None, name="CI", identity="ci")
    assert key.read_bytes() == before
    (tmp_path / "only.pem.pub").write_text("x")
    with pytest.raises(KeyFileError, match="only.pem.pub exists"):
        create_key(tmp_path / "only.pem", passphrase=None, name="CI", identity="ci")
    assert not (tmp_path / "only.pem").exists()


def test_create_key_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        create_key(tmp_path / "k.pem", passphrase=None, name="CI", identity="ci")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_loose_key_file_mode_is_refused(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "k.pem"
    create_key(key, passphrase=None, name="CI", identity="ci")
    key.chmod(mode)
    with pytest.raises(KeyFileError) as err:
        Ed25519Signer.from_file(key, None)
    assert str(err.value) == (
        f"key file {key} is readable by group or others (mode {mode:04o}); chmod 600 it"
    )


def test_stricter_mode_is_accepted(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    create_key(key, passphrase=None, name="CI", identity="ci")
    key.chmod(0o400)
    assert Ed25519Signer.from_file(key, None).keyid


def test_passphrase_errors(tmp_path: Path) -> None:
    enc, plain = tmp_path / "enc.pem", tmp_path / "plain.pem"
    create_key(enc, passphrase=b"right", name="J", identity="j")
    create_key(plain, passphrase=None, name="CI", identity="ci")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        Ed25519Signer.from_file(enc, b"wrong")
    with pytest.raises(KeyFileError, match="needs a passphrase"):
        Ed25519Signer.from_file(enc, None)
    with pytest.raises(KeyFileError, match="is not encrypted"):
        Ed25519Signer.from_file(plain, b"x")
    with pytest.raises(KeyFileError, match="empty passphrase"):
        create_key(tmp_path / "e.pem", passphrase=b"", name="J", identity="j")
    with pytest.raises(KeyFileError, match="cannot be read"):
        Ed25519Signer.from_file(tmp_path / "missing.pem", None)


def test_non_ed25519_key_file_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = tmp_path / "ec.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
        Ed25519Signer.from_file(key, None)


def test_public_key_file_is_ascii_whatever_the_name(tmp_path: Path) -> None:
    key = tmp_path / "j.pem"
    keyid = create_key(key, passphrase=None, name="Jürgen Müller", identity="jm@example.com")
    text = (tmp_path / "j.pem.pub").read_text(encoding="ascii")
    assert "# name: J\\xfcrgen M\\xfcller" in text
    assert keyid_of(load_public_key_pem(text)) == keyid
