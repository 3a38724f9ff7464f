"""Key files, key ids, DSSE envelopes (with interop against securesystemslib)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from qualification.errors import EvidenceInvalidError, KeyFileError
from qualification.signing import (
    RECORD_PAYLOAD_TYPE,
    Ed25519Signer,
    Envelope,
    EnvelopeSignature,
    Signer,
    create_key,
    keyid_of,
    load_public_key_pem,
    pae,
    parse_envelope,
    sign_envelope,
    verify_envelope,
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


def test_pae_matches_the_dsse_specification() -> None:
    # The worked example from the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("é", b"\x00") == b"DSSEv1 2 \xc3\xa9 1 \x00"


def test_envelope_round_trip_and_verification() -> None:
    signer, other = Ed25519Signer.generate(), Ed25519Signer.generate()
    env = sign_envelope(b'{"a":1}', signer)
    line = env.to_bytes()
    assert line.startswith(b'{"payload":"eyJhIjoxfQ==","payloadType":"application/vnd.vqual')
    parsed = parse_envelope(line)
    assert parsed == env
    assert verify_envelope(parsed, {signer.keyid: signer.public_key}) == signer.keyid
    assert verify_envelope(parsed, {other.keyid: other.public_key}) is None
    # A key listed under the signer's id but not the signer's key does not verify.
    assert verify_envelope(parsed, {signer.keyid: other.public_key}) is None
    forged = Envelope(b'{"a":2}', env.payload_type, env.signatures)
    assert verify_envelope(forged, {signer.keyid: signer.public_key}) is None


@pytest.mark.parametrize(
    "line",
    [
        b'{"payloadType":"t","payload":"eyJhIjoxfQ==","signatures":[{"keyid":"k","sig":"AA=="}]}',
        b'{"payload": "eyJhIjoxfQ==","payloadType":"t","signatures":[{"keyid":"k","sig":"AA=="}]}',
        b'{"payload":"eyJhIjoxfQ","payloadType":"t","signatures":[{"keyid":"k","sig":"AA=="}]}',
        b'{"payload":"eyJhIjoxfQ==","payloadType":"t","signatures":[]}',
        b'{"payload":"eyJhIjoxfQ==","payloadType":"t","signatures":[{"keyid":"k"}]}',
        b'{"payload":"eyJhIjoxfQ==","payloadType":"t"}',
        b"[1]",
        b"not json",
    ],
)
def test_malformed_or_non_canonical_envelopes_are_refused(line: bytes) -> None:
    with pytest.raises(EvidenceInvalidError):
        parse_envelope(line, where="records.jsonl line 3")


def test_our_envelope_verifies_with_securesystemslib() -> None:
    signer = Ed25519Signer.generate()
    env = sign_envelope(b'{"kind":"run.start"}', signer)
    theirs = SslibEnvelope.from_dict(json.loads(env.to_bytes()))
    key = SSlibKey.from_crypto(signer.public_key, keyid=signer.keyid)
    accepted = theirs.verify([key], 1)
    assert list(accepted) == [signer.keyid]
    assert theirs.pae() == env.pae()
    # and a tampered payload fails in their implementation too
    bad = dict(json.loads(env.to_bytes()))
    bad["payload"] = base64.b64encode(b'{"kind":"run.end"}').decode()
    with pytest.raises(VerificationError, match="Found: 0"):
        SslibEnvelope.from_dict(bad).verify([key], 1)


def test_securesystemslib_envelope_verifies_with_ours() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    keyid = keyid_of(private.public_key())
    theirs = SslibEnvelope(b'{"x":true}', RECORD_PAYLOAD_TYPE, {})
    theirs.sign(CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), keyid=keyid)))
    sig = theirs.signatures[keyid]
    env = Envelope(
        theirs.payload,
        theirs.payload_type,
        (EnvelopeSignature(keyid, bytes.fromhex(sig.signature)),),
    )
    assert verify_envelope(env, {keyid: private.public_key()}) == keyid


def test_public_key_file_is_ascii_whatever_the_name(tmp_path: Path) -> None:
    key = tmp_path / "j.pem"
    keyid = create_key(key, passphrase=None, name="Jürgen Müller", identity="jm@example.com")
    text = (tmp_path / "j.pem.pub").read_text(encoding="ascii")
    assert "# name: J\\xfcrgen M\\xfcller" in text
    assert keyid_of(load_public_key_pem(text)) == keyid
