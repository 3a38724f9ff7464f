"""The fingerprint: a canonical, versioned description of a qualified state, and its comparison.

A fingerprint describes one subject (an inventory host) as it was observed: the virtual
hardware the platform reports (``vm``), the guest operating system (``guest``), the values
expected to differ per instance (``identity``), template facts (``generalised``) and digests
of the parts. Clone qualification and drift compare a live fingerprint with a baseline one;
:func:`compare` lists every difference that is not allowed, in a deterministic order.
A ``fingerprint`` record carries one (:func:`fingerprint_record`,
:func:`fingerprints_from_records`). It is the check library's vocabulary, handed to the checks
that compare with it; ``qualification.baseline`` re-exports it.

Format: docs/formats.md, section "Fingerprint".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.evidence.canonical import canonical_bytes, normalize_for_record
from qualification.evidence.kinds import FINGERPRINT

FINGERPRINT_SCHEMA = "vqual.fingerprint/v1"
KINDS = ("vm", "host", "hypervisor")

#: The fields of ``identity``; each is expected to differ between a master and its clones.
IDENTITY_FIELDS = (
    "name",
    "uuid",
    "macs",
    "hostname",
    "machine_id",
    "addresses",
    "ssh_host_keys",
)

#: Virtual hardware values that may be resized within a range (URS-OPS-04).
SIZING_FIELDS = ("vcpus", "memory_mib")

_FIELDS = ("schema", "subject", "kind", "vm", "guest", "identity", "generalised", "digests")


def sha256_of(value: Any) -> str:
    """SHA-256 (hex) of ``value`` in canonical JSON (RFC 8785)."""
    return hashlib.sha256(canonical_bytes(normalize_for_record(value))).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """One subject's qualified (or live) state.

    Attributes:
        schema: :data:`FINGERPRINT_SCHEMA`.
        subject: the inventory name of the host or VM.
        kind: ``vm``, ``host`` or ``hypervisor``.
        vm: virtual hardware from the platform (vcpus, memory_mib, firmware, machine, disks,
            nics, devices); None for a host.
        guest: the operating system (os_release, kernel, packages, services, users, groups,
            files, security); None when it was not observed.
        identity: values expected to differ per instance (:data:`IDENTITY_FIELDS`).
        generalised: template facts (``machine_id_empty``, ``ssh_host_keys``).
        digests: SHA-256 of ``packages``, ``files``, ``vm``, ``guest``; ``disk`` where the
            platform gives a disk content digest, else None.
    """

    schema: str
    subject: str
    kind: str
    vm: Mapping[str, Any] | None
    guest: Mapping[str, Any] | None
    identity: Mapping[str, Any]
    generalised: Mapping[str, Any]
    digests: Mapping[str, str | None]

    def to_json(self) -> dict[str, Any]:
        """The fingerprint as plain JSON data (what the ``fingerprint`` record carries)."""
        data: dict[str, Any] = normalize_for_record(
            {
                "schema": self.schema,
                "subject": self.subject,
                "kind": self.kind,
                "vm": self.vm,
                "guest": self.guest,
                "identity": self.identity,
                "generalised": self.generalised,
                "digests": self.digests,
            }
        )
        return data

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_json`."""
        return sha256_of(self.to_json())

    @classmethod
    def from_json(cls, data: Any, *, where: str = "fingerprint") -> Fingerprint:
        """Read a fingerprint, checking its schema and shape.

        Raises:
            BadInputError: not a ``vqual.fingerprint/v1`` object, naming ``where`` and why.
        """
        if not isinstance(data, Mapping):
            raise BadInputError("a fingerprint must be a JSON object", where=where)
        unknown = sorted(set(data) - set(_FIELDS))
        missing = [f for f in _FIELDS if f not in data]
        if unknown or missing:
            raise BadInputError(
                f"fingerprint fields: missing {missing or 'none'}, unknown {unknown or 'none'}",
                where=where,
            )
        if data["schema"] != FINGERPRINT_SCHEMA:
            raise BadInputError(
                f"schema {data['schema']!r} is not {FINGERPRINT_SCHEMA!r}", where=where
            )
        if not isinstance(data["subject"], str) or not data["subject"]:
            raise BadInputError("subject must be a non-empty string", where=where)
        if data["kind"] not in KINDS:
            raise BadInputError(
                f"kind {data['kind']!r} is not one of {', '.join(KINDS)}", where=where
            )
        for name in ("vm", "guest"):
            if data[name] is not None and not isinstance(data[name], Mapping):
                raise BadInputError(f"{name} must be an object or null", where=where)
        for name in ("identity", "generalised", "digests"):
            if not isinstance(data[name], Mapping):
                raise BadInputError(f"{name} must be an object", where=where)
        return cls(
            schema=data["schema"],
            subject=data["subject"],
            kind=data["kind"],
            vm=dict(data["vm"]) if data["vm"] is not None else None,
            guest=dict(data["guest"]) if data["guest"] is not None else None,
            identity=dict(data["identity"]),
            generalised=dict(data["generalised"]),
            digests=dict(data["digests"]),
        )


def make_fingerprint(
    subject: str,
    kind: str,
    *,
    vm: Mapping[str, Any] | None = None,
    guest: Mapping[str, Any] | None = None,
    identity: Mapping[str, Any] | None = None,
    generalised: Mapping[str, Any] | None = None,
    disk_digest: str | None = None,
) -> Fingerprint:
    """A fingerprint with its part digests computed from the parts given."""
    if kind not in KINDS:
        raise BadInputError(f"fingerprint kind {kind!r} is not one of {', '.join(KINDS)}")
    vm_j = normalize_for_record(dict(vm)) if vm is not None else None
    guest_j = normalize_for_record(dict(guest)) if guest is not None else None
    digests: dict[str, str | None] = {
        "packages": sha256_of((guest_j or {}).get("packages") or {}) if guest_j else None,
        "files": sha256_of((guest_j or {}).get("files") or {}) if guest_j else None,
        "vm": sha256_of(vm_j) if vm_j is not None else None,
        "guest": sha256_of(guest_j) if guest_j is not None else None,
        "disk": disk_digest,
    }
    return Fingerprint(
        schema=FINGERPRINT_SCHEMA,
        subject=subject,
        kind=kind,
        vm=vm_j,
        guest=guest_j,
        identity=normalize_for_record(dict(identity or {})),
        generalised=normalize_for_record(dict(generalised or {})),
        digests=digests,
    )


def merge(parts: Sequence[Fingerprint]) -> Fingerprint:
    """One fingerprint from partial ones of the same subject (the VM part from the platform,
    the guest part from the guest); later parts fill what earlier ones left empty."""
    if not parts:
        raise ValueError("merge of no fingerprints")
    subject = parts[0].subject
    if any(p.subject != subject for p in parts):
        raise ValueError("merge of fingerprints of different subjects")
    vm = next((p.vm for p in parts if p.vm is not None), None)
    guest = next((p.guest for p in parts if p.guest is not None), None)
    kind = "vm" if vm is not None else parts[0].kind
    identity: dict[str, Any] = {}
    generalised: dict[str, Any] = {}
    disk = None
    for p in parts:
        for k, v in p.identity.items():
            identity.setdefault(k, v)
        for k, v in p.generalised.items():
            generalised.setdefault(k, v)
        disk = disk or p.digests.get("disk")
    return make_fingerprint(
        subject,
        kind,
        vm=vm,
        guest=guest,
        identity=identity,
        generalised=generalised,
        disk_digest=disk,
    )


@dataclass(frozen=True)
class SizeRange:
    """An allowed range for a sizing value; None leaves that side open."""

    min: int | None = None
    max: int | None = None

    def contains(self, value: Any) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def text(self) -> str:
        low = "-inf" if self.min is None else str(self.min)
        high = "inf" if self.max is None else str(self.max)
        return f"[{low}, {high}]"


@dataclass(frozen=True)
class AllowedDifferences:
    """What may differ between a baseline and a live fingerprint.

    Attributes:
        identity: identity fields never reported (default: all of :data:`IDENTITY_FIELDS`).
        sizing: ranges for ``vcpus`` and ``memory_mib``; a value inside its range is not a
            difference, one outside is (naming the range). A sizing field without a range
            must equal the baseline.
        generalised: whether template facts are compared. Off by default: a clone or a
            booted guest is never generalised, its template is.
    """

    identity: frozenset[str] = frozenset(IDENTITY_FIELDS)
    sizing: Mapping[str, SizeRange] = field(default_factory=dict)
    generalised: bool = False

    @classmethod
    def from_json(cls, data: Any, *, where: str = "allowed differences") -> AllowedDifferences:
        """From ``{identity: [...], sizing: {vcpus: {min, max}, memory_mib: {...}},
        generalised: bool}``; every key is optional.

        Raises:
            BadInputError: unknown keys or fields, or a range that is not integers with
                min <= max.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise BadInputError("must be a mapping", where=where)
        unknown = sorted(set(data) - {"identity", "sizing", "generalised"})
        if unknown:
            raise BadInputError(f"unknown keys {unknown}", where=where)
        identity = data.get("identity", list(IDENTITY_FIELDS))
        if not isinstance(identity, list) or any(i not in IDENTITY_FIELDS for i in identity):
            raise BadInputError(
                f"identity must list fields of {', '.join(IDENTITY_FIELDS)}", where=where
            )
        sizing: dict[str, SizeRange] = {}
        raw_sizing = data.get("sizing") or {}
        if not isinstance(raw_sizing, Mapping):
            raise BadInputError("sizing must be a mapping", where=where)
        for name, bounds in raw_sizing.items():
            if name not in SIZING_FIELDS:
                raise BadInputError(
                    f"sizing.{name}: not one of {', '.join(SIZING_FIELDS)}", where=where
                )
            if not isinstance(bounds, Mapping) or set(bounds) - {"min", "max"}:
                raise BadInputError(f"sizing.{name} must be {{min, max}}", where=where)
            low, high = bounds.get("min"), bounds.get("max")
            for v in (low, high):
                if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                    raise BadInputError(f"sizing.{name}: min and max are integers", where=where)
            if low is not None and high is not None and low > high:
                raise BadInputError(f"sizing.{name}: min {low} > max {high}", where=where)
            sizing[str(name)] = SizeRange(low, high)
        generalised = data.get("generalised", False)
        if not isinstance(generalised, bool):
            raise BadInputError("generalised must be true or false", where=where)
        return cls(identity=frozenset(identity), sizing=sizing, generalised=generalised)

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": sorted(self.identity),
            "sizing": {k: {"min": r.min, "max": r.max} for k, r in sorted(self.sizing.items())},
            "generalised": self.generalised,
        }


@dataclass(frozen=True)
class Difference:
    """One way a live fingerprint differs from its baseline.

    Attributes:
        what: the kind of difference: ``package``, ``file``, ``user``, ``group``,
            ``service``, ``security``, ``os_release``, ``kernel``, ``vm.vcpus``,
            ``vm.memory_mib``, ``vm.firmware``, ``vm.machine``, ``vm.disk``, ``vm.nic``,
            ``vm.device``, ``identity.<field>``, ``generalised``, ``data`` (application
            data: ``detail`` says changed, removed or added), ``check`` (drift of a check
            result), ``subject`` (a whole part missing).
        where: what it is about: a package name, a path, a user name, a disk target...
        baseline: the baseline value (None: absent in the baseline).
        live: the live value (None: absent now).
        subject: the live subject.
        detail: why it counts, where the values alone do not say (a sizing range).
    """

    what: str
    where: str
    baseline: Any
    live: Any
    subject: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "where": self.where,
            "baseline": self.baseline,
            "live": self.live,
            "subject": self.subject,
            "detail": self.detail,
        }

    def text(self) -> str:
        """One line: ``<subject>: <what> <where>: baseline <b>, live <l> (<detail>)``."""
        line = f"{self.subject}: {self.what} {self.where}: baseline {_show(self.baseline)}, live {_show(self.live)}"
        return f"{line} ({self.detail})" if self.detail else line


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, str):
        return value
    return canonical_bytes(normalize_for_record(value)).decode("utf-8")


class _Collector:
    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.found: list[Difference] = []

    def add(self, what: str, where: str, baseline: Any, live: Any, detail: str = "") -> None:
        self.found.append(Difference(what, where, baseline, live, self.subject, detail))

    def mapping(self, what: str, baseline: Any, live: Any) -> None:
        """Compare two ``{key: value}`` maps key by key."""
        b = baseline if isinstance(baseline, Mapping) else {}
        lv = live if isinstance(live, Mapping) else {}
        for key in sorted(set(b) | set(lv)):
            if b.get(key) != lv.get(key) or (key in b) != (key in lv):
                self.add(what, str(key), b.get(key), lv.get(key))

    def keyed_list(self, what: str, baseline: Any, live: Any, key: str) -> None:
        """Compare two lists of objects matched by ``key`` (users by name, disks by target)."""
        b = {str(i.get(key)): i for i in baseline or [] if isinstance(i, Mapping)}
        lv = {str(i.get(key)): i for i in live or [] if isinstance(i, Mapping)}
        for name in sorted(set(b) | set(lv)):
            if b.get(name) != lv.get(name):
                self.add(what, name, b.get(name), lv.get(name))


def _compare_vm(
    c: _Collector, base: Mapping[str, Any], live: Mapping[str, Any], allowed: AllowedDifferences
) -> None:
    for name in SIZING_FIELDS:
        b, lv = base.get(name), live.get(name)
        limits = allowed.sizing.get(name)
        if limits is not None:
            if not limits.contains(lv):
                c.add(f"vm.{name}", name, b, lv, f"outside the allowed range {limits.text()}")
        elif b != lv:
            c.add(f"vm.{name}", name, b, lv)
    for name in ("firmware", "machine", "secure_boot", "arch", "os_type"):
        if (name in base or name in live) and base.get(name) != live.get(name):
            c.add(f"vm.{name}", name, base.get(name), live.get(name))
    c.keyed_list("vm.disk", base.get("disks"), live.get("disks"), "target")
    b_nics = [n for n in base.get("nics") or [] if isinstance(n, Mapping)]
    l_nics = [n for n in live.get("nics") or [] if isinstance(n, Mapping)]
    for i in range(max(len(b_nics), len(l_nics))):
        bn = b_nics[i] if i < len(b_nics) else None
        ln = l_nics[i] if i < len(l_nics) else None
        if bn != ln:
            c.add("vm.nic", f"nic{i}", bn, ln)
    b_dev, l_dev = set(base.get("devices") or ()), set(live.get("devices") or ())
    for dev in sorted(b_dev | l_dev):
        if (dev in b_dev) != (dev in l_dev):
            c.add(
                "vm.device", str(dev), dev if dev in b_dev else None, dev if dev in l_dev else None
            )


def _compare_guest(c: _Collector, base: Mapping[str, Any], live: Mapping[str, Any]) -> None:
    c.mapping("os_release", base.get("os_release"), live.get("os_release"))
    c.mapping("kernel", base.get("kernel"), live.get("kernel"))
    c.mapping("package", base.get("packages"), live.get("packages"))
    c.mapping("service", base.get("services"), live.get("services"))
    c.keyed_list("user", base.get("users"), live.get("users"), "name")
    c.keyed_list("group", base.get("groups"), live.get("groups"), "name")
    c.mapping("file", base.get("files"), live.get("files"))
    c.mapping("security", base.get("security"), live.get("security"))
    if "data" in base or "data" in live:
        _compare_data(c, base.get("data"), live.get("data"))


def _compare_data(c: _Collector, base: Any, live: Any) -> None:
    """Application data (``guest.data``, :mod:`qualification.checks.app_data`): each file
    changed, removed or added is one ``data`` difference naming which."""
    b = base if isinstance(base, Mapping) else {}
    lv = live if isinstance(live, Mapping) else {}
    for path in sorted(set(b) | set(lv)):
        if path not in lv:
            c.add("data", str(path), b[path], None, "removed")
        elif path not in b:
            c.add("data", str(path), None, lv[path], "added")
        elif b[path] != lv[path]:
            c.add("data", str(path), b[path], lv[path], "changed")


def compare(
    baseline: Fingerprint, live: Fingerprint, allowed: AllowedDifferences | None = None
) -> list[Difference]:
    """Every difference of ``live`` from ``baseline`` that ``allowed`` does not allow.

    Identity fields in ``allowed.identity`` never produce a difference; sizing values are
    judged against their ranges; a part (vm or guest) present in one fingerprint and not in
    the other is one ``subject`` difference. Sorted by what, then where.
    """
    allowed = allowed or AllowedDifferences()
    c = _Collector(live.subject)
    for part in ("vm", "guest"):
        b, lv = getattr(baseline, part), getattr(live, part)
        if (b is None) != (lv is None):
            c.add(
                "subject",
                part,
                "observed" if b is not None else None,
                "observed" if lv is not None else None,
            )
    if baseline.vm is not None and live.vm is not None:
        _compare_vm(c, baseline.vm, live.vm, allowed)
    if baseline.guest is not None and live.guest is not None:
        _compare_guest(c, baseline.guest, live.guest)
    for name in sorted(set(baseline.identity) | set(live.identity)):
        if name in allowed.identity:
            continue
        if baseline.identity.get(name) != live.identity.get(name):
            c.add(f"identity.{name}", name, baseline.identity.get(name), live.identity.get(name))
    if allowed.generalised:
        c.mapping("generalised", baseline.generalised, live.generalised)
    return sorted(c.found, key=lambda d: (d.subject, d.what, d.where))


#: The record kind that carries a fingerprint (docs/formats.md; the registry's name).
FINGERPRINT_KIND = FINGERPRINT


def fingerprint_record(fingerprint: Fingerprint) -> dict[str, Any]:
    """The ``fingerprint`` record's data: the fingerprint JSON plus its ``digest``."""
    data = fingerprint.to_json()
    data["digest"] = fingerprint.digest()
    return data


def fingerprints_from_records(
    records: list[tuple[int, Mapping[str, Any]]], *, where: str
) -> dict[str, Fingerprint]:
    """``{subject: fingerprint}`` from ``(line, data)`` of ``fingerprint`` records.

    A later record of the same subject replaces an earlier one.

    Raises:
        EvidenceInvalidError: a record is not a fingerprint or its digest does not match.
    """
    found: dict[str, Fingerprint] = {}
    for line, data in records:
        at = f"{where} line {line}"
        body = {k: v for k, v in data.items() if k != "digest"}
        try:
            fp = Fingerprint.from_json(body, where=at)
        except BadInputError as exc:  # a malformed record makes the baseline unusable
            raise EvidenceInvalidError(str(exc), where=at) from None
        if fp.digest() != data.get("digest"):
            raise EvidenceInvalidError(
                f"fingerprint digest {data.get('digest')!r} is not that of its content "
                f"({fp.digest()})",
                where=at,
            )
        found[fp.subject] = fp
    return found
