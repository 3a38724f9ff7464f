"""The TSA a trust store names (``trust.yaml``'s optional ``tsa`` section, docs/formats.md).

Its root certificates are entries of the store, so they are covered by the store's digest
and its signed versions like any key: nobody can swap the roots a verifier trusts without
changing the store. ``valid_from`` says from when records must carry tokens from it; a run
sealed before it was named is judged without trusted time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from qualification.errors import BadInputError, TrustError
from qualification.signing.timestamping import load_roots

FIELDS = frozenset({"name", "url", "roots", "policy", "valid_from"})
_OID_CHARS = frozenset("0123456789.")


@dataclass(frozen=True)
class TsaEntry:
    """The trusted Time-Stamp Authority of a trust store.

    Attributes:
        name: What evidence and reports call it.
        url: Where tokens are asked for (HTTP POST, RFC 3161 section 3.4).
        roots_pem: Its trusted root certificates, PEM.
        valid_from: From this time on, run seals and signatures must carry its tokens.
        policy: The TSA policy OID its tokens must name (None: any).
    """

    name: str
    url: str
    roots_pem: str
    valid_from: datetime
    policy: str | None = None

    def roots(self) -> list[x509.Certificate]:
        return load_roots(self.roots_pem)

    def named_at(self, when: datetime) -> bool:
        """Whether the store named this TSA at ``when`` (records then must carry tokens)."""
        return when >= self.valid_from

    def describe(self) -> list[str]:
        """What ``vqual trust tsa list`` shows: the fields, then each root certificate."""
        lines = [f"tsa: {self.name}", f"  url: {self.url}",
                 f"  policy: {self.policy or 'any'}",
                 (f"  valid_from: {self.to_json()['valid_from']} (from then on seals and "
                  "signatures must carry its tokens)")]
        for cert in self.roots():
            digest = cert.fingerprint(hashes.SHA256()).hex()
            until = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(f"  root: {cert.subject.rfc4514_string()} (sha256 {digest[:16]}, "
                         f"valid until {until})")
        return lines

    def to_json(self) -> dict[str, Any]:
        """The section as ``trust.yaml`` (and a run plan) holds it."""
        return {
            "name": self.name,
            "url": self.url,
            "roots": self.roots_pem,
            "policy": self.policy,
            "valid_from": self.valid_from.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def parse_tsa(entry: Any, where: str) -> TsaEntry | None:
    """The ``tsa`` section of a trust store (None when absent).

    Raises:
        TrustError: a field is missing, unknown or malformed (named).
    """
    if entry is None:
        return None
    where = f"{where}: tsa"
    if not isinstance(entry, Mapping):
        raise TrustError("must be a mapping with name, url, roots, valid_from", where=where)
    unknown = set(entry) - FIELDS
    if unknown:
        raise TrustError(f"unknown field(s) {sorted(unknown)}", where=where)
    text = {}
    for name in ("name", "url", "roots"):
        value = entry.get(name)
        if not isinstance(value, str) or not value.strip():
            raise TrustError(f"field '{name}' must be a non-empty string", where=where)
        text[name] = value
    if not text["url"].startswith(("http://", "https://")):
        raise TrustError(f"field 'url' {text['url']!r} is not http(s)", where=where)
    try:
        load_roots(text["roots"])
    except BadInputError as exc:
        raise TrustError(f"field 'roots': {exc.message}", where=where) from None
    policy = entry.get("policy")
    if policy is not None and (
        not isinstance(policy, str) or not policy or set(policy) - _OID_CHARS
    ):
        raise TrustError("field 'policy' must be a dotted OID such as 1.2.3.4", where=where)
    return TsaEntry(text["name"], text["url"], text["roots"], _since(entry, where), policy)


def new_tsa(name: str, url: str, roots_pem: str, policy: str | None,
            valid_from: datetime) -> TsaEntry:
    """A ``tsa`` section from a trust-admin's input, checked as a stored one is.

    Raises:
        TrustError: a field is malformed (named): an empty name, a URL that is not http(s),
            roots that are not PEM certificates, a policy that is not a dotted OID.
    """
    since = valid_from.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {"name": name, "url": url, "roots": roots_pem, "policy": policy,
             "valid_from": since}
    found = parse_tsa(entry, "the new TSA")
    assert found is not None  # a mapping was given
    return found


def describe_tsa_change(old: TsaEntry | None, new: TsaEntry | None) -> list[str]:
    """What changed in the ``tsa`` section between two trust store versions (one line)."""
    if old == new:
        return []
    if new is None:
        assert old is not None
        return [f"removed the TSA {old.name} ({old.url})"]
    named = f"{new.name} ({new.url}) from {new.to_json()['valid_from']}"
    return [f"named the TSA {named}" if old is None else f"replaced the TSA with {named}"]


def _since(entry: Mapping[str, Any], where: str) -> datetime:
    value = entry.get("valid_from")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TrustError("field 'valid_from' must be a UTC time ending in Z", where=where)
    return value.astimezone(UTC)
