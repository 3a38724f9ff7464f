"""Signing: the signer interface, Ed25519 key files, DSSE envelopes and the trust store."""

from qualification.signing.dsse import (
    RECORD_PAYLOAD_TYPE,
    Envelope,
    EnvelopeSignature,
    pae,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from qualification.signing.keys import (
    Ed25519Signer,
    Signer,
    create_key,
    keyid_of,
    load_public_key_pem,
    public_key_pem,
)
from qualification.signing.trust import ROLES, TrustedKey, TrustStore

__all__ = [
    "RECORD_PAYLOAD_TYPE",
    "ROLES",
    "Ed25519Signer",
    "Envelope",
    "EnvelopeSignature",
    "Signer",
    "TrustStore",
    "TrustedKey",
    "create_key",
    "keyid_of",
    "load_public_key_pem",
    "pae",
    "parse_envelope",
    "public_key_pem",
    "sign_envelope",
    "verify_envelope",
]
