"""DSSE envelopes: PAE, signing and verification, strict parsing, and interop with
securesystemslib."""

from __future__ import annotations

import base64
import json

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from qualification.errors import EvidenceInvalidError
from qualification.signing import (
    RECORD_PAYLOAD_TYPE,
    Ed25519Signer,
    Envelope,
    EnvelopeSignature,
    keyid_of,
    pae,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)


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
