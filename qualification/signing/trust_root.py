"""The pinned trust root: the trust-admin key(s) a verifier trusts before it reads any state.

A pin file (docs/formats.md, "Keys and trust store") lists root keys, oldest first, each with
a validity period. Rotation appends a new root endorsed by the one before it: the previous
root signs the new entry and the time it takes over, so a pin whose chain of endorsements
does not hold is refused on load. The pin never comes from the state directory (an attacker
who can write there must not choose what vouches for it): :func:`find_pin` takes it from
``--trust-root``, then :data:`PIN_ENV`, then :data:`SYSTEM_PIN` (which must be writable by
root only).

:class:`TrustTimeline` is a trust store judged by time: every signed version of ``trust.yaml``
with the time it was signed; a record signed at ``t`` is judged by the version in force at
``t`` (the latest signed at or before it), so a key that entered the store later cannot vouch
for it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidSignature

from qualification.errors import BadInputError, KeyFileError, TrustError
from qualification.signing.keys import Signer, keyid_of, load_public_key_pem
from qualification.signing.trust import TrustedKey, TrustStore, _Dumper

PIN_VERSION = 1
PIN_KIND = "vqual.trust-root"
#: Environment variable naming a pin file (after ``--trust-root``).
PIN_ENV = "VQUAL_TRUST_ROOT"
#: The controller's pin file (last); it must be writable by root only.
SYSTEM_PIN = Path("/etc/vqual/trust-root.yaml")
#: What an endorsement signs before its canonical content, so it cannot pass for anything else.
_ENDORSE_CONTEXT = b"vqual trust root endorsement v1\n"


@dataclass(frozen=True)
class RootKey:
    """One pinned root key and when it may sign trust store versions."""

    keyid: str
    name: str
    public_key_pem: str
    valid_from: datetime
    valid_until: datetime | None = None
    endorsed_by: str | None = None
    endorsement: str | None = None  # base64 Ed25519 signature by ``endorsed_by``

    def valid_at(self, when: datetime) -> bool:
        return self.valid_from <= when and (self.valid_until is None or when < self.valid_until)

    def period(self) -> str:
        until = _fmt(self.valid_until) if self.valid_until else "open"
        return f"{_fmt(self.valid_from)} .. {until}"


@dataclass(frozen=True)
class TrustRoot:
    """A loaded, checked pin file and where it came from."""

    roots: tuple[RootKey, ...]
    source: str  # "--trust-root /x", "VQUAL_TRUST_ROOT=/x", "/etc/vqual/trust-root.yaml"
    path: Path

    def root_for(self, keyid: str, when: datetime) -> tuple[RootKey | None, str]:
        """The pinned root ``keyid`` valid at ``when``, or None and why not."""
        for root in self.roots:
            if root.keyid == keyid:
                if root.valid_at(when):
                    return root, "valid"
                return None, (
                    f"root {keyid[:16]} is pinned for {root.period()}, not at {_fmt(when)}"
                )
        return None, f"key {keyid[:16]} is not a pinned trust root"


def _fmt(when: datetime) -> str:
    # To the microsecond, as record times: a root handed over within a second of a signing
    # must not seem to end before it.
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if when.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def parse_utc(value: Any, name: str, where: str) -> datetime:
    """A UTC time from YAML (a timestamp or an ISO string ending in Z)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise TrustError(f"field '{name}' is not a UTC time: {value!r}", where=where) from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TrustError(f"field '{name}' must be a UTC time ending in Z", where=where)
    return value.astimezone(UTC)


# ---------------------------------------------------------------- the pin file


def _endorsement_bytes(prev: RootKey, new: RootKey) -> bytes:
    """What the previous root signs: it hands over to ``new`` from ``new.valid_from``."""
    # Every value is a string or null, so sorted compact JSON is canonical (RFC 8785).
    return _ENDORSE_CONTEXT + json.dumps(
        {
            "retires": prev.keyid,
            "keyid": new.keyid,
            "name": new.name,
            "public_key": new.public_key_pem,
            "valid_from": _fmt(new.valid_from),
            "valid_until": _fmt(new.valid_until) if new.valid_until else None,
        },
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode("utf-8")


_ROOT_FIELDS = {
    "keyid", "name", "public_key", "valid_from", "valid_until", "endorsed_by", "endorsement",
}


def _parse_root(entry: Any, where: str) -> RootKey:
    if not isinstance(entry, dict):
        raise TrustError("must be a mapping", where=where)
    unknown = set(entry) - _ROOT_FIELDS
    if unknown:
        raise TrustError(f"unknown field(s) {sorted(unknown)}", where=where)
    pem = entry.get("public_key")
    if not isinstance(pem, str):
        raise TrustError("field 'public_key' must be a PEM public key", where=where)
    try:
        keyid = keyid_of(load_public_key_pem(pem))
    except KeyFileError as exc:
        raise TrustError(f"field 'public_key': {exc.message}", where=where) from None
    if entry.get("keyid") != keyid:
        raise TrustError(f"field 'keyid' does not match public_key (its id is {keyid})",
                         where=where)
    until = entry.get("valid_until")
    return RootKey(
        keyid=keyid,
        name=str(entry.get("name") or "trust root"),
        public_key_pem=pem,
        valid_from=parse_utc(entry.get("valid_from"), "valid_from", where),
        valid_until=parse_utc(until, "valid_until", where) if until is not None else None,
        endorsed_by=entry.get("endorsed_by"),
        endorsement=entry.get("endorsement"),
    )


def parse_pin(data: bytes, where: str) -> tuple[RootKey, ...]:
    """The root keys of a pin file, with every rotation's endorsement checked.

    Raises:
        TrustError: not a pin file, a malformed entry, or a rotation not endorsed by the
            root before it (or overlapping it).
    """
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise TrustError(f"trust root is not valid YAML: {exc}", where=where) from None
    if not isinstance(doc, dict) or doc.get("kind") != PIN_KIND:
        raise TrustError(f"not a trust root pin file (kind {PIN_KIND} expected)", where=where)
    if doc.get("version") != PIN_VERSION:
        raise TrustError(f"field 'version' must be {PIN_VERSION}", where=where)
    entries = doc.get("roots")
    if not isinstance(entries, list) or not entries:
        raise TrustError("field 'roots' must be a non-empty list", where=where)
    roots = tuple(_parse_root(e, f"{where}: roots[{i}]") for i, e in enumerate(entries))
    for i in range(1, len(roots)):
        _check_endorsement(roots[i - 1], roots[i], f"{where}: roots[{i}]")
    return roots


def _check_endorsement(prev: RootKey, new: RootKey, where: str) -> None:
    if new.endorsed_by != prev.keyid or not new.endorsement:
        raise TrustError(
            f"root {new.keyid[:16]} is not endorsed by the root before it ({prev.keyid[:16]})",
            where=where,
        )
    if prev.valid_until is None or prev.valid_until > new.valid_from:
        raise TrustError(
            f"root {prev.keyid[:16]} must end (valid_until) when {new.keyid[:16]} takes over",
            where=where,
        )
    try:
        sig = base64.b64decode(new.endorsement, validate=True)
        load_public_key_pem(prev.public_key_pem).verify(sig, _endorsement_bytes(prev, new))
    except (InvalidSignature, binascii.Error, ValueError):
        raise TrustError(
            f"root {new.keyid[:16]}: endorsement by {prev.keyid[:16]} does not verify",
            where=where,
        ) from None


def _root_obj(root: RootKey) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "keyid": root.keyid,
        "name": root.name,
        "public_key": root.public_key_pem,
        "valid_from": _fmt(root.valid_from),
        "valid_until": _fmt(root.valid_until) if root.valid_until else None,
    }
    if root.endorsed_by:
        obj["endorsed_by"] = root.endorsed_by
        obj["endorsement"] = root.endorsement
    return obj


def pin_yaml(roots: Sequence[RootKey]) -> bytes:
    """The pin file's bytes for ``roots`` (oldest first)."""
    doc = {"version": PIN_VERSION, "kind": PIN_KIND, "roots": [_root_obj(r) for r in roots]}
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False)
    return text.encode("utf-8")


def new_root(public_pem: str, name: str, valid_from: datetime) -> RootKey:
    """A first root entry for ``public_pem``.

    Raises:
        KeyFileError: not an Ed25519 public key.
    """
    pem = public_pem[public_pem.find("-----BEGIN"):]
    return RootKey(keyid_of(load_public_key_pem(pem)), name, pem, valid_from.astimezone(UTC))


def rotate(roots: Sequence[RootKey], signer: Signer, public_pem: str, name: str,
           at: datetime) -> tuple[RootKey, ...]:
    """``roots`` with a new root taking over at ``at``, endorsed by the current root.

    Raises:
        TrustError: ``signer`` is not the current (last) root, or ``at`` is not after its start.
    """
    prev = roots[-1]
    if signer.keyid != prev.keyid:
        raise TrustError(f"only the current root {prev.keyid[:16]} can endorse its successor")
    at = at.astimezone(UTC)
    if at <= prev.valid_from:
        raise TrustError(f"a new root must start after {_fmt(prev.valid_from)}")
    if prev.valid_until is not None and prev.valid_until < at:
        raise TrustError(f"the current root ended at {_fmt(prev.valid_until)}")
    retired = RootKey(prev.keyid, prev.name, prev.public_key_pem, prev.valid_from, at,
                      prev.endorsed_by, prev.endorsement)
    unsigned = new_root(public_pem, name, at)
    sig = base64.b64encode(signer.sign(_endorsement_bytes(retired, unsigned))).decode("ascii")
    endorsed = RootKey(unsigned.keyid, name, unsigned.public_key_pem, at, None,
                       retired.keyid, sig)
    return (*roots[:-1], retired, endorsed)


def write_pin(path: Path, data: bytes) -> None:
    """Write a pin file atomically (mode 0644): a reader sees the old pin or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".trust-root.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise



# ---------------------------------------------------------------- finding the pin


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _system_pin_problem(path: Path) -> str | None:
    """Why the system pin file cannot be trusted (writable by anyone but root), or None."""
    for part in (path, *path.parents):
        try:
            st = part.stat()
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        # A sticky directory (/tmp) lets nobody replace an entry someone else owns.
        sticky_dir = part != path and mode & stat.S_ISVTX
        if st.st_uid != 0 or (mode & 0o022 and not sticky_dir):
            return (f"{part} is writable by someone other than root "
                    f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")
    return None


def find_pin(state_dir: Path, explicit: Path | None = None,
             environ: dict[str, str] | None = None,
             system_pin: Path = SYSTEM_PIN) -> TrustRoot | None:
    """The pin to judge ``state_dir``'s trust store with, or None when there is none.

    Sources, first found wins: ``explicit`` (``--trust-root``), :data:`PIN_ENV`, ``system_pin``.

    Raises:
        BadInputError: the pin named cannot be read, lies inside the state directory, or (the
            system pin) is writable by someone other than root.
        TrustError: the file is not a valid pin (:func:`parse_pin`).
    """
    env = os.environ if environ is None else environ
    if explicit is not None:
        path, source = explicit, f"--trust-root {explicit}"
    elif env.get(PIN_ENV):
        path = Path(env[PIN_ENV])
        source = f"{PIN_ENV}={path}"
    elif system_pin.exists():
        path, source = system_pin, str(system_pin)
        problem = _system_pin_problem(system_pin)
        if problem is not None:
            raise BadInputError(f"system trust root refused: {problem}")
    else:
        return None
    if _inside(path, state_dir):
        raise BadInputError(
            f"trust root {path} is inside the state directory {state_dir}: whoever can write "
            "the evidence could choose its own root; keep the pin elsewhere"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"trust root {path} cannot be read: {exc.strerror}") from None
    return TrustRoot(parse_pin(data, str(path)), source, path)


# ---------------------------------------------------------------- judging by time


@dataclass
class TrustTimeline(TrustStore):
    """A trust store whose keys are judged by the signed version in force at each time.

    :attr:`keys` holds every key any version listed (the latest entry of each), so any of
    them verifies a signature; whether it counts is :meth:`key_status_at` and
    :meth:`role_at` at the signature's time.
    """

    #: (signing time, version number, that version's keys), oldest first
    versions: list[tuple[datetime, int, dict[str, TrustedKey]]] = field(default_factory=list)
    root_keyid: str = ""
    root_source: str = ""
    _times: list[datetime] = field(default_factory=list, repr=False)

    @classmethod
    def build(cls, current: TrustStore,
              versions: Sequence[tuple[datetime, int, TrustStore]],
              root_keyid: str, root_source: str) -> TrustTimeline:
        """From the current store and its signed versions (time-ordered, checked)."""
        keys: dict[str, TrustedKey] = {}
        table = []
        for when, number, store in versions:
            keys.update(store.keys)
            table.append((when, number, dict(store.keys)))
        keys.update(current.keys)
        return cls(current.path, keys, current.digest, current.raw, tsa=current.tsa,
                   versions=table, root_keyid=root_keyid, root_source=root_source,
                   _times=[t for t, _, _ in table])

    @property
    def version(self) -> int:
        return self.versions[-1][1] if self.versions else 0

    def in_force(self, when: datetime) -> tuple[int, dict[str, TrustedKey]] | None:
        """The version in force at ``when``: the latest signed at or before it."""
        i = bisect.bisect_right(self._times, when)
        if i == 0:
            return None
        _, number, keys = self.versions[i - 1]
        return number, keys

    def key_status_at(self, keyid: str, when: datetime) -> tuple[bool, str]:
        found = self.in_force(when)
        if found is None:
            first = _fmt(self._times[0]) if self._times else "never"
            return False, (f"no signed trust store version was in force at {_fmt(when)} "
                           f"(version 1 was signed {first})")
        number, keys = found
        key = keys.get(keyid)
        if key is None:
            if keyid in self.keys:
                return False, (f"key {keyid[:16]} was not in trust store version {number}, "
                               "in force at that time (it entered the store later)")
            return False, f"key {keyid[:16]} is not in the trust store"
        return key.status_at(when)

    def role_at(self, keyid: str, role: str, when: datetime) -> bool:
        found = self.in_force(when)
        key = found[1].get(keyid) if found is not None else None
        return key is not None and role in key.roles


def check_versions_rooted(root: TrustRoot,
                          versions: Sequence[tuple[datetime, int, str]]) -> None:
    """Every version (signing time, number, signer key id) signed by a pinned root valid then.

    Raises:
        TrustError: a version signed by a key that is not a pinned root valid at its time.
    """
    for when, number, keyid in versions:
        found, why = root.root_for(keyid, when)
        if found is None:
            raise TrustError(
                f"trust store version {number} is not signed by the pinned trust root: {why}",
                where=str(root.path),
            )
