"""Trusted time: RFC 3161 time-stamp tokens from a Time-Stamp Authority, and their check.

:func:`request_token` asks a TSA (HTTP ``POST`` of ``application/timestamp-query``, RFC 3161
section 3.4) for a token over a SHA-256 digest, with a fresh nonce and a bounded timeout.
:func:`verify_token` checks a token against trusted root certificates: it covers the given
digest, its signer chains to one of the roots, the signer's certificate carries the critical
``timeStamping`` extended key usage, and its time lies in a given window. Parsing and the
signature and chain checks are Trail of Bits' ``rfc3161-client``; this module only builds the
query (that library hashes the data itself, and here the digest is what is stamped) and turns
every failure into one line.

A token is the DER ``TimeStampToken`` (CMS ``SignedData``), the part of a TSA's reply worth
keeping: ``openssl ts -verify -token_in -in TOKEN -digest HEX -CAfile ROOTS`` checks it
without vqual.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from qualification.errors import BadInputError, EvidenceInvalidError, PlatformError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
DEFAULT_TIMEOUT = 10.0
# A reply holds a token and a certificate or two; far less than this.
MAX_REPLY = 1024 * 1024


class TimestampError(PlatformError):
    """The TSA could not be reached, answered with an HTTP error, refused the request, or
    sent a reply that is not a valid answer to it (exit code 4)."""


class TimestampInvalid(EvidenceInvalidError):
    """A token does not prove what it should: another digest, an untrusted or unfit signer,
    a time outside the window, or not a token at all (exit code 1)."""


@dataclass(frozen=True)
class TimestampToken:
    """A token a TSA granted for ``digest``.

    Attributes:
        der: The DER ``TimeStampToken`` (CMS ``SignedData``).
        digest: The SHA-256 digest it covers.
        gen_time: The TSA's time (UTC), as the token states it; not yet verified.
        nonce: The nonce of the request it answers.
        url: The TSA it came from.
    """

    der: bytes
    digest: bytes
    gen_time: datetime
    nonce: int
    url: str


@dataclass(frozen=True)
class VerifiedTime:
    """What a verified token proves.

    Attributes:
        time: The TSA's time (``genTime``, UTC).
        tsa_subject: The signing certificate's subject (RFC 4514).
        serial: The token's serial number at that TSA.
        policy: The TSA policy OID the token was issued under.
    """

    time: datetime
    tsa_subject: str
    serial: int
    policy: str


# --- the query (DER, RFC 3161 section 2.4.1) ---------------------------------------------


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_int(value: int) -> bytes:
    # Non-negative only; one extra byte keeps the sign bit clear.
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


# AlgorithmIdentifier { id-sha256, NULL }
_SHA256_ALGORITHM = bytes.fromhex("300d060960864801650304020105 00".replace(" ", ""))


def encode_query(digest: bytes, nonce: int) -> bytes:
    """The DER ``TimeStampReq`` (v1) for a SHA-256 ``digest``, asking for the TSA's
    certificate in the reply (``certReq``) so a verifier needs only the roots."""
    imprint = _der(0x30, _SHA256_ALGORITHM + _der(0x04, digest))
    cert_req = bytes.fromhex("0101ff")
    return _der(0x30, _der_int(1) + imprint + _der_int(nonce) + cert_req)


def _as_response(token: bytes) -> bytes:
    """A granted ``TimeStampResp`` around ``token``: the form the parser reads."""
    return _der(0x30, _der(0x30, _der_int(0)) + token)


def _check_digest(digest: bytes) -> None:
    if not isinstance(digest, bytes) or len(digest) != hashlib.sha256().digest_size:
        raise BadInputError("a time-stamp covers a SHA-256 digest: 32 bytes", where="timestamp")


# --- asking a TSA --------------------------------------------------------------------------


def _post(url: str, query: bytes, timeout: float) -> bytes:
    request = urllib.request.Request(
        url, data=query, method="POST", headers={"Content-Type": QUERY_TYPE}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            body: bytes = resp.read(MAX_REPLY + 1)
            missing = resp.length  # bytes the stated Content-Length still owes, if stated
    except urllib.error.HTTPError as exc:
        raise TimestampError(f"TSA answered HTTP {exc.code} {exc.reason}", where=url) from exc
    except urllib.error.URLError as exc:
        raise TimestampError(f"TSA unreachable: {exc.reason}", where=url) from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise TimestampError(f"TSA unreachable: {exc}", where=url) from exc
    except http.client.HTTPException as exc:  # a status line or headers that are not HTTP
        raise TimestampError(f"TSA reply is not HTTP: {_short(exc)}", where=url) from exc
    if missing and len(body) <= MAX_REPLY:
        raise TimestampError(
            f"TSA reply broken off after {len(body)} of {len(body) + missing} bytes", where=url
        )
    if ctype != REPLY_TYPE:
        raise TimestampError(f"TSA reply is {ctype or 'untyped'}, not {REPLY_TYPE}", where=url)
    if len(body) > MAX_REPLY:
        raise TimestampError(f"TSA reply is larger than {MAX_REPLY} bytes", where=url)
    return body


def _refusal(resp: TimeStampResponse) -> str:
    text = "; ".join(s for s in resp.status_string if s) or "no reason given"
    try:
        status = PKIStatus(resp.status).name.lower().replace("_", " ")
    except ValueError:
        status = f"unknown status {resp.status}"
    if resp.status == PKIStatus.GRANTED_WITH_MODS:
        return f"TSA granted the request with modifications ({text}); only granted is accepted"
    return f"TSA refused the request: {status} ({text})"


def request_token(
    url: str, digest: bytes, *, timeout: float = DEFAULT_TIMEOUT, nonce: int | None = None
) -> TimestampToken:
    """Ask the TSA at ``url`` for a token over the SHA-256 ``digest``.

    The reply must be granted and answer this very request (same digest, same nonce); its
    signature and certificates are checked by :func:`verify_token`, not here.

    Args:
        url: The TSA's HTTP(S) URL.
        digest: 32 bytes.
        timeout: Seconds for connecting and for each read.
        nonce: The request's nonce; a fresh random 64-bit one by default.

    Raises:
        BadInputError: Not a SHA-256 digest, or not an http(s) URL.
        TimestampError: Unreachable, an HTTP error, refused, or a malformed reply.
    """
    _check_digest(digest)
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"TSA URL {url!r} is not http(s)", where="timestamp")
    nonce = secrets.randbits(64) if nonce is None else nonce
    body = _post(url, encode_query(digest, nonce), timeout)
    try:
        resp = decode_timestamp_response(body)
    except ValueError as exc:
        raise TimestampError(f"TSA reply is malformed: {_short(exc)}", where=url) from exc
    if resp.status != PKIStatus.GRANTED:
        raise TimestampError(_refusal(resp), where=url)
    try:
        info = resp.tst_info
        token = resp.time_stamp_token()
        imprint = info.message_imprint
        ok = (
            imprint.hash_algorithm.dotted_string == SHA256_OID
            and imprint.message == digest
            and info.nonce == nonce
        )
    except ValueError as exc:
        raise TimestampError(f"TSA reply is malformed: {_short(exc)}", where=url) from exc
    if not ok:
        raise TimestampError("TSA reply answers another request (digest or nonce)", where=url)
    return TimestampToken(token, digest, info.gen_time, nonce, url)


# --- checking a token ----------------------------------------------------------------------


def load_roots(pem: bytes | str) -> list[x509.Certificate]:
    """The certificates in PEM text (one or more).

    Raises:
        BadInputError: No certificate, or one that does not parse.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        roots = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise BadInputError(f"TSA roots: not PEM certificates ({exc})", where="timestamp") from exc
    return roots


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _signer(resp: TimeStampResponse) -> x509.Certificate | None:
    """The certificate named by the token's one SignerInfo, if the token carries it."""
    infos = list(resp.signed_data.signer_infos)
    if len(infos) != 1:
        return None
    for der in resp.signed_data.certificates:
        cert = x509.load_der_x509_certificate(der)
        if cert.issuer == infos[0].issuer and cert.serial_number == infos[0].serial_number:
            return cert
    return None


def _why(exc: VerificationError) -> str:
    """The library's reason in the words a verifier reports."""
    text = _short(exc)
    # OpenSSL's error stack, as the library formats it: keep only its reasons.
    found = re.findall(r'(?:reason|data): "([^"]+)"', str(exc))
    reasons = "; ".join(dict.fromkeys(found)) or text
    # OpenSSL judges the purpose while it builds the chain; the library checks the extension
    # itself when the chain holds. Either way it is the certificate's usage that is wrong.
    if "purpose" in reasons or "EKU" in text or "KeyPurposeID" in text:
        return f"TSA certificate lacks the critical timeStamping extended key usage ({reasons})"
    if text.startswith("Error while verifying certificates"):
        return f"token signer does not chain to the trusted TSA roots ({reasons})"
    return f"token signature check failed: {text}"


def _accuracy(resp: TimeStampResponse) -> timedelta:
    try:
        acc = resp.tst_info.accuracy
    except ValueError:
        return timedelta(0)
    if acc is None:
        return timedelta(0)
    return timedelta(
        seconds=acc.seconds or 0, milliseconds=acc.millis or 0, microseconds=acc.micros or 0
    )


def verify_token(
    token: bytes,
    digest: bytes,
    roots: Sequence[x509.Certificate] | bytes | str,
    *,
    not_before: datetime,
    not_after: datetime,
) -> VerifiedTime:
    """Check that ``token`` proves ``digest`` existed between ``not_before`` and ``not_after``.

    The token must cover ``digest`` (SHA-256), be signed by a certificate that chains to one of
    ``roots`` and carries the critical ``timeStamping`` extended key usage (the chain judged at
    the token's time), and its ``genTime``, widened by the accuracy the token states, must meet
    the window (both ends included; timezone-aware datetimes).

    Args:
        token: The DER ``TimeStampToken``.
        digest: The SHA-256 digest it must cover.
        roots: Trusted root certificates, or their PEM text.
        not_before: Earliest time the token may show.
        not_after: Latest time the token may show.

    Raises:
        BadInputError: Not a SHA-256 digest, unreadable roots, or a naive or empty window.
        TimestampInvalid: The token fails any check; the message says which.
    """
    _check_digest(digest)
    if not_before.tzinfo is None or not_after.tzinfo is None or not_after < not_before:
        raise BadInputError("time window must be timezone-aware and not end before it starts",
                            where="timestamp")
    trusted = load_roots(roots) if isinstance(roots, (bytes, str)) else list(roots)
    if not trusted:
        raise BadInputError("no trusted TSA root given", where="timestamp")
    try:
        resp = decode_timestamp_response(_as_response(token))
        info = resp.tst_info
        imprint = info.message_imprint
    except ValueError as exc:
        raise TimestampInvalid(f"not an RFC 3161 time-stamp token: {_short(exc)}") from exc
    if imprint.hash_algorithm.dotted_string != SHA256_OID:
        raise TimestampInvalid(f"token imprint is not SHA-256 ({imprint.hash_algorithm})")
    if imprint.message != digest:
        raise TimestampInvalid(
            f"token covers digest {imprint.message.hex()[:16]}..., not {digest.hex()[:16]}..."
        )
    builder = VerifierBuilder()
    for root in trusted:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(resp, digest)
    except VerificationError as exc:
        raise TimestampInvalid(_why(exc)) from exc
    except ValueError as exc:
        raise TimestampInvalid(f"token signature check failed: {_short(exc)}") from exc
    when = info.gen_time
    slack = _accuracy(resp)
    if when + slack < not_before or when - slack > not_after:
        raise TimestampInvalid(
            f"token time {when.isoformat()} is outside {not_before.isoformat()} .. "
            f"{not_after.isoformat()}"
        )
    signer = _signer(resp)
    subject = signer.subject.rfc4514_string() if signer is not None else ""
    return VerifiedTime(when, subject, info.serial_number, info.policy.dotted_string)
