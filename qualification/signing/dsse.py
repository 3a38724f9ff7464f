"""DSSE envelopes (https://github.com/secure-systems-lab/dsse), Ed25519, canonical JSON.

An envelope line is ``{"payload":..,"payloadType":..,"signatures":[{"keyid":..,"sig":..}]}`` in
RFC 8785 form. Its members are base64 text, a fixed payload type and hex key ids, none of which
JCS escapes, so the writer assembles the bytes directly and :func:`parse_envelope` checks a line
is in exactly that form by rebuilding it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from qualification.errors import EvidenceInvalidError
from qualification.signing.keys import Signer

#: Payload type of evidence records.
RECORD_PAYLOAD_TYPE = "application/vnd.vqual.record+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A decoded DSSE envelope."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_bytes(self) -> bytes:
        """Canonical JSON (RFC 8785) of the envelope, without newline."""
        return envelope_bytes(
            self.payload, self.payload_type, [(s.keyid, s.sig) for s in self.signatures]
        )

    def to_dict(self) -> dict[str, object]:
        """The envelope as the DSSE JSON object (for other DSSE implementations)."""
        return json.loads(self.to_bytes())  # type: ignore[no-any-return]


def envelope_bytes(payload: bytes, payload_type: str, signatures: list[tuple[str, bytes]]) -> bytes:
    """Serialise an envelope in canonical form (keys sorted, no whitespace)."""
    sigs = ",".join(
        f'{{"keyid":{_jstr(keyid)},"sig":"{base64.b64encode(sig).decode("ascii")}"}}'
        for keyid, sig in signatures
    )
    b64 = base64.b64encode(payload).decode("ascii")
    return (
        f'{{"payload":"{b64}","payloadType":{_jstr(payload_type)},"signatures":[{sigs}]}}'.encode()
    )


def _jstr(text: str) -> str:
    # JCS string form; the standard encoder agrees with RFC 8785 for strings.
    return json.dumps(text, ensure_ascii=False)


def sign_envelope(
    payload: bytes, signer: Signer, payload_type: str = RECORD_PAYLOAD_TYPE
) -> Envelope:
    """Sign ``payload`` with ``signer`` into a one-signature envelope."""
    sig = signer.sign(pae(payload_type, payload))
    return Envelope(payload, payload_type, (EnvelopeSignature(signer.keyid, sig),))


def parse_envelope(line: bytes, *, where: str | None = None) -> Envelope:
    """Parse one canonical envelope line (no newline).

    Raises:
        EvidenceInvalidError: not JSON, wrong members or types, bad base64, or not in
            canonical form.
    """
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise EvidenceInvalidError("not a JSON envelope", where=where) from None
    if not isinstance(obj, dict) or set(obj) != {"payload", "payloadType", "signatures"}:
        raise EvidenceInvalidError(
            "envelope must have exactly payload, payloadType, signatures", where=where
        )
    ptype, b64, sigs = obj["payloadType"], obj["payload"], obj["signatures"]
    if not isinstance(ptype, str) or not isinstance(b64, str) or not isinstance(sigs, list):
        raise EvidenceInvalidError("envelope members have wrong types", where=where)
    if not sigs:
        raise EvidenceInvalidError("envelope has no signature", where=where)
    try:
        payload = base64.b64decode(b64, validate=True)
        signatures = []
        for s in sigs:
            if (
                not isinstance(s, dict)
                or set(s) != {"keyid", "sig"}
                or not isinstance(s["keyid"], str)
                or not isinstance(s["sig"], str)
            ):
                raise EvidenceInvalidError("malformed envelope signature", where=where)
            signatures.append(
                EnvelopeSignature(s["keyid"], base64.b64decode(s["sig"], validate=True))
            )
    except (binascii.Error, ValueError):
        raise EvidenceInvalidError("envelope base64 is malformed", where=where) from None
    env = Envelope(payload, ptype, tuple(signatures))
    if env.to_bytes() != line:
        raise EvidenceInvalidError("envelope is not in canonical form", where=where)
    return env


def verify_envelope(env: Envelope, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """Return the key id of the first signature that verifies with a key in ``keys``.

    Signatures by key ids not in ``keys`` are ignored (DSSE: unknown keys do not count).
    """
    data = env.pae()
    for s in env.signatures:
        key = keys.get(s.keyid)
        if key is None:
            continue
        try:
            key.verify(s.sig, data)
        except InvalidSignature:
            continue
        return s.keyid
    return None
