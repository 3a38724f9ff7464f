"""The trust store (``trust.yaml``): which keys are trusted, for whom and for what.

A key's validity is judged at the time it signed (the record's ``time``), so archived bundles
stay valid after a key expires or is revoked later. The store's digest (SHA-256 of the file's
bytes) goes into every run and every verification result.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from qualification.errors import KeyFileError, TrustError
from qualification.signing.keys import keyid_of, load_public_key_pem
from qualification.signing.trusted_tsa import TsaEntry, parse_tsa

ROLES = ("executor", "reviewer", "approver", "trust-admin", "log")
TRUST_VERSION = 1


@dataclass(frozen=True)
class TrustedKey:
    """One key in the trust store."""

    keyid: str
    name: str
    identity: str
    roles: tuple[str, ...]
    public_key_pem: str
    valid_from: datetime
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    throwaway: bool = False

    def public_key(self) -> Ed25519PublicKey:
        return load_public_key_pem(self.public_key_pem, where=f"key {self.keyid}")

    def status_at(self, when: datetime) -> tuple[bool, str]:
        """Whether the key was valid at ``when`` and, if not, why."""
        if when < self.valid_from:
            return False, f"key {self.keyid[:16]} not valid before {_fmt(self.valid_from)}"
        if self.valid_until is not None and when >= self.valid_until:
            return False, f"key {self.keyid[:16]} expired at {_fmt(self.valid_until)}"
        if self.revoked_at is not None and when >= self.revoked_at:
            return False, f"key {self.keyid[:16]} revoked at {_fmt(self.revoked_at)}"
        return True, "valid"

    def to_yaml_obj(self) -> dict[str, Any]:
        return {
            "keyid": self.keyid,
            "name": self.name,
            "identity": self.identity,
            "roles": list(self.roles),
            "public_key": self.public_key_pem,
            "valid_from": _fmt(self.valid_from),
            "valid_until": _fmt(self.valid_until) if self.valid_until else None,
            "revoked_at": _fmt(self.revoked_at) if self.revoked_at else None,
            "throwaway": self.throwaway,
        }


def _fmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TrustStore:
    """Keys trusted for signing evidence, loaded from and saved to ``path``."""

    path: Path
    keys: dict[str, TrustedKey] = field(default_factory=dict)
    digest: str | None = None  # SHA-256 of the file bytes as loaded or last saved
    #: the file bytes as loaded or last saved (None for a new, unsaved store)
    raw: bytes | None = field(default=None, repr=False, compare=False)
    #: the TSA whose tokens seals and signatures carry (the optional ``tsa`` section)
    tsa: TsaEntry | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustStore:
        """Read and validate ``trust.yaml``.

        Raises:
            TrustError: missing file, YAML error, or a malformed field (named with its key).
        """
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise TrustError(f"trust store cannot be read: {exc.strerror}", where=str(p)) from None
        return cls.parse(raw, p)

    @classmethod
    def parse(cls, raw: bytes, path: str | os.PathLike[str]) -> TrustStore:
        """Validate the bytes of a ``trust.yaml`` read from ``path`` (named in errors).

        Raises:
            TrustError: as :meth:`load`, except that nothing is read.
        """
        p = Path(path)
        try:
            doc = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
            raise TrustError(
                f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where
            ) from None
        store = cls(p, digest=hashlib.sha256(raw).hexdigest(), raw=bytes(raw))
        if not isinstance(doc, dict):
            raise TrustError("top level must be a mapping with version and keys", where=str(p))
        if doc.get("version") != TRUST_VERSION:
            raise TrustError(f"field 'version' must be {TRUST_VERSION}", where=str(p))
        entries = doc.get("keys")
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise TrustError("field 'keys' must be a list", where=str(p))
        unknown = set(doc) - {"version", "keys", "tsa"}
        if unknown:
            raise TrustError(f"unknown field(s) {sorted(unknown)}", where=str(p))
        store.tsa = parse_tsa(doc.get("tsa"), str(p))
        for i, entry in enumerate(entries):
            key = _parse_entry(entry, f"{p}: keys[{i}]")
            if key.keyid in store.keys:
                raise TrustError(f"keys[{i}].keyid {key.keyid} listed twice", where=str(p))
            store.keys[key.keyid] = key
        return store

    @classmethod
    def empty(cls, path: str | os.PathLike[str]) -> TrustStore:
        """A store with no keys that :meth:`save` will write to ``path``."""
        return cls(Path(path))

    def get(self, keyid: str) -> TrustedKey | None:
        return self.keys.get(keyid)

    def key_status_at(self, keyid: str, when: datetime) -> tuple[bool, str]:
        """Whether ``keyid`` is trusted and valid at ``when`` (aware UTC) and, if not, why."""
        if when.tzinfo is None:
            raise TrustError("key_status_at needs a timezone-aware (UTC) time")
        key = self.keys.get(keyid)
        if key is None:
            return False, f"key {keyid[:16]} is not in the trust store"
        return key.status_at(when)

    def has_role(self, keyid: str, role: str) -> bool:
        key = self.keys.get(keyid)
        return key is not None and role in key.roles

    def role_at(self, keyid: str, role: str, when: datetime) -> bool:
        """Whether ``keyid`` holds ``role`` at ``when`` (one version: at any time)."""
        return self.has_role(keyid, role)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {k: v.public_key() for k, v in self.keys.items()}

    def add_key(
        self,
        *,
        public_key_pem: str,
        name: str,
        identity: str,
        roles: Sequence[str],
        valid_from: datetime,
        valid_until: datetime | None = None,
        throwaway: bool = False,
    ) -> TrustedKey:
        """Add a key (in memory; call :meth:`save`).

        Raises:
            TrustError: unknown role, naive datetime, key already present.
            KeyFileError: ``public_key_pem`` is not an Ed25519 public key.
        """
        pub = load_public_key_pem(public_key_pem, where="public key")
        keyid = keyid_of(pub)
        if keyid in self.keys:
            raise TrustError(f"key {keyid} is already in the trust store", where=str(self.path))
        pem = public_key_pem[public_key_pem.find("-----BEGIN") :]
        key = TrustedKey(
            keyid=keyid,
            name=_need_text(name, "name", str(self.path)),
            identity=_need_text(identity, "identity", str(self.path)),
            roles=_roles(list(roles), str(self.path)),
            public_key_pem=pem,
            valid_from=_aware(valid_from, "valid_from"),
            valid_until=_aware(valid_until, "valid_until") if valid_until else None,
            throwaway=throwaway,
        )
        self.keys[keyid] = key
        return key

    def revoke(self, keyid: str, when: datetime) -> TrustedKey:
        """Mark ``keyid`` revoked from ``when`` on (signatures before it stay valid)."""
        key = self.keys.get(keyid)
        if key is None:
            raise TrustError(f"key {keyid} is not in the trust store", where=str(self.path))
        self.keys[keyid] = replace(key, revoked_at=_aware(when, "revoked_at"))
        return self.keys[keyid]

    def to_yaml(self) -> bytes:
        doc: dict[str, Any] = {
            "version": TRUST_VERSION, "keys": [k.to_yaml_obj() for k in self.keys.values()]
        }
        if self.tsa is not None:
            doc["tsa"] = self.tsa.to_json()
        text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        return text.encode("utf-8")

    def save(self) -> str:
        """Write the store atomically to :attr:`path`; return and remember its new digest."""
        data = self.to_yaml()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".trust.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.digest = hashlib.sha256(data).hexdigest()
        self.raw = data
        return self.digest


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Writes PEM blocks as literal ``|`` scalars, as people paste them."""


def _str_repr(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str_repr)


def _aware(when: datetime, name: str) -> datetime:
    if when.tzinfo is None:
        raise TrustError(f"{name} must carry a time zone (UTC)")
    return when.astimezone(UTC)


def _need_text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TrustError(f"field '{name}' must be a non-empty string", where=where)
    return value


def _roles(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise TrustError("field 'roles' must be a non-empty list", where=where)
    for role in value:
        if role not in ROLES:
            raise TrustError(
                f"field 'roles': unknown role {role!r} (one of {', '.join(ROLES)})", where=where
            )
    return tuple(value)


def _time_field(entry: dict[str, Any], name: str, where: str, required: bool) -> datetime | None:
    value = entry.get(name)
    if value is None:
        if required:
            raise TrustError(f"field '{name}' is required", where=where)
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise TrustError(f"field '{name}' is not a UTC time: {value!r}", where=where) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TrustError(f"field '{name}' must end in Z (UTC)", where=where)
        return value.astimezone(UTC)
    if isinstance(value, date):
        raise TrustError(f"field '{name}' needs a time, e.g. {value}T00:00:00Z", where=where)
    raise TrustError(f"field '{name}' is not a UTC time", where=where)


_FIELDS = {
    "keyid",
    "name",
    "identity",
    "roles",
    "public_key",
    "valid_from",
    "valid_until",
    "revoked_at",
    "throwaway",
}


def _parse_entry(entry: Any, where: str) -> TrustedKey:
    if not isinstance(entry, dict):
        raise TrustError("must be a mapping", where=where)
    unknown = set(entry) - _FIELDS
    if unknown:
        raise TrustError(f"unknown field(s) {sorted(unknown)}", where=where)
    keyid = _need_text(entry.get("keyid"), "keyid", where)
    pem = _need_text(entry.get("public_key"), "public_key", where)
    try:
        pub = load_public_key_pem(pem)
    except KeyFileError as exc:
        raise TrustError(f"field 'public_key': {exc.message}", where=where) from None
    if keyid_of(pub) != keyid:
        raise TrustError(
            f"field 'keyid' {keyid} does not match public_key (its id is {keyid_of(pub)})",
            where=where,
        )
    throwaway = entry.get("throwaway", False)
    if throwaway is None:
        throwaway = False
    if not isinstance(throwaway, bool):
        raise TrustError("field 'throwaway' must be true or false", where=where)
    valid_from = _time_field(entry, "valid_from", where, required=True)
    if valid_from is None:  # unreachable: required=True raises; narrows the type
        raise TrustError("field 'valid_from' is required", where=where)
    return TrustedKey(
        keyid=keyid,
        name=_need_text(entry.get("name"), "name", where),
        identity=_need_text(entry.get("identity"), "identity", where),
        roles=_roles(entry.get("roles"), where),
        public_key_pem=pem,
        valid_from=valid_from,
        valid_until=_time_field(entry, "valid_until", where, required=False),
        revoked_at=_time_field(entry, "revoked_at", where, required=False),
        throwaway=throwaway,
    )
