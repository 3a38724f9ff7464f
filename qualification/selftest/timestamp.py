"""OQ self check of trusted time (VQ-29): a stored RFC 3161 token, shipped with its root as
package data (``data/tsa-token.der``, ``data/tsa-root.pem``, from the lab's TSA), verifies
offline for its digest, root and time, and is refused for another digest, another root and a
time outside the window. No TSA is asked."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from qualification.selftest.base import Outcome, SelfCheck
from qualification.signing.timestamping import TimestampInvalid, verify_token

#: What the stored token covers, and the time its TSA gave it.
TOKEN_DIGEST = hashlib.sha256(b"vqual archived token").digest()
TOKEN_TIME = datetime(2026, 12, 6, 18, 5, 38, tzinfo=UTC)
_NEAR = timedelta(seconds=5)

#: case -> (what it must give, the words a refusal must say: the control that refused it).
WANT = {
    "its digest, root and time": "accepted",
    "another digest": "refused",
    "another root": "refused",
    "a window after its time": "refused",
}
_BECAUSE = {
    "another digest": "covers digest",
    "another root": "does not chain",
    "a window after its time": "outside",
}


def stored_token() -> tuple[bytes, bytes]:
    """The stored token (DER) and its TSA's root (PEM), from the package data."""
    data = resources.files(__package__) / "data"
    return (data / "tsa-token.der").read_bytes(), (data / "tsa-root.pem").read_bytes()


def _other_root() -> bytes:
    """A self-signed CA that never issued the TSA's certificate (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vqual selftest other root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now.replace(year=2000))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


def trusted_time(token: bytes, root: bytes) -> Outcome:
    """``token`` with ``root`` through ``verify_token``: accepted as stored, refused (by the
    control that should refuse it) for another digest, another root and a later window."""
    other_digest = hashlib.sha256(b"another run.end line").digest()
    after = (TOKEN_TIME + _NEAR, TOKEN_TIME + 2 * _NEAR)
    cases = {
        "its digest, root and time": (TOKEN_DIGEST, root, TOKEN_TIME - _NEAR, TOKEN_TIME + _NEAR),
        "another digest": (other_digest, root, TOKEN_TIME - _NEAR, TOKEN_TIME + _NEAR),
        "another root": (TOKEN_DIGEST, _other_root(), TOKEN_TIME - _NEAR, TOKEN_TIME + _NEAR),
        "a window after its time": (TOKEN_DIGEST, root, *after),
    }
    got: dict[str, str] = {}
    said: dict[str, str] = {}
    for case, (digest, roots, not_before, not_after) in cases.items():
        try:
            verified = verify_token(token, digest, roots, not_before=not_before,
                                    not_after=not_after)
        except TimestampInvalid as exc:
            said[case] = exc.one_line()
            because = _BECAUSE.get(case)
            got[case] = "refused" if because is None or because in said[case] else (
                "refused otherwise")
            continue
        got[case] = "accepted" if verified.time == TOKEN_TIME else "accepted at another time"
        said[case] = f"token time {verified.time.isoformat()}"
    wrong = [
        f"{case}: {got[case]}" + (f" ({said[case]})" if case in said else "")
        for case in WANT
        if got.get(case) != WANT[case]
    ]
    return Outcome(not wrong, got, "; ".join(wrong) or None)


def timestamp_checks() -> list[SelfCheck]:
    """OQ: the stored time-stamp token against its root, offline."""
    return [
        SelfCheck(
            "ST-OQ-13",
            "a time-stamp token is accepted only for its digest, its TSA's root and its time",
            "OQ",
            "VQ-29",
            "qualification.signing.timestamping.verify_token on the stored token "
            "(data/tsa-token.der, data/tsa-root.pem)",
            {"op": "equals", "value": WANT},
            lambda: trusted_time(*stored_token()),
        )
    ]
