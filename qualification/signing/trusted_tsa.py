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
