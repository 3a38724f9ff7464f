"""Deviations and waivers: ``<state>/deviations/<change>/``.

``deviations.yaml`` lists a change's deviations (test id, target, justification, expiry,
owner). A deviation counts only once an approver has signed it: ``vqual deviation approve``
writes a waiver, a DSSE envelope (payload type :data:`WAIVER_TYPE`, kind ``deviation.waiver``)
in ``waivers/`` that binds the deviation's content by digest, so editing the deviation voids
its waiver. During a run a ``fail`` covered by a signed, unexpired deviation becomes
``waived`` with the deviation's id, and the waiver is copied into the bundle as a
``deviation.waiver`` record, so the bundle alone shows why.

Segregation of duties: whoever raised a deviation (``raised_by``) or owns it (``owner``) may
not approve it, and an approver may not waive a failure of a run they initiated or executed;
``vqual deviation approve`` refuses the first, the bundle checks refuse both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from qualification.errors import BadInputError, TrustError, VqualError
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.reader import read_bundle
from qualification.evidence.records import (
    CHECK_RESULT,
    RUN_KINDS,
    check_safe_name,
    format_time,
    utc_now,
)
from qualification.evidence.trusted_time import check_file, stamp_file
from qualification.evidence.verify import (
    DEVIATION_FIELDS,
    DEVIATION_OPTIONAL,
    WAIVER_KIND,
    WAIVER_TYPE,
    judge_waivers,
)
from qualification.review.documents import (
    check_signer,
    compact_time,
    open_document,
    sign_document,
    signer_fields,
    write_new,
)
from qualification.signing import Signer, TrustStore
from qualification.verdict import Verdict

DEVIATIONS_DIR = "deviations"
DEVIATIONS_FILE = "deviations.yaml"
WAIVERS_DIR = "waivers"

_FIELDS = DEVIATION_FIELDS
_OPTIONAL = DEVIATION_OPTIONAL
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Deviation:
    """One entry of ``deviations.yaml``; ``digest`` binds a waiver to exactly this content."""

    id: str
    test_id: str
    target: str
    justification: str
    expiry: str  # UTC, record form
    owner: str
    raised_by: str | None = None  # identity (or printed name) of who raised it

    def to_json(self) -> dict[str, str]:
        found = {f: getattr(self, f) for f in _FIELDS}
        found.update({f: getattr(self, f) for f in _OPTIONAL if getattr(self, f) is not None})
        return found

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deviation:
        """Read :meth:`to_json` back.

        Raises:
            KeyError, TypeError: a field is missing or not a string.
        """
        fields = {f: _json_text(data[f]) for f in _FIELDS}
        fields.update({f: _json_text(data[f]) for f in _OPTIONAL if data.get(f) is not None})
        return cls(**fields)

    def raisers(self) -> set[str]:
        """Who may not approve this deviation: its owner and whoever raised it."""
        return {self.owner, *([self.raised_by] if self.raised_by else [])}

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical_bytes(self.to_json())).hexdigest()

    def expired_at(self, when: str) -> bool:
        """Whether the deviation has expired at record time ``when``."""
        return when >= self.expiry  # both in record form, so text order is time order


@dataclass(frozen=True)
class Waiver:
    """A deviation with a valid approver's signature over its current content."""

    deviation: Deviation
    name: str
    keyid: str
    time: str
    comment: str | None
    file: str  # relative to the state directory
    envelope: str  # the stored envelope, canonical JSON text
    identity: str = ""  # the approver's identity in the trust store

    def to_json(self) -> dict[str, Any]:
        """The waiver as it was judged, for :meth:`from_json` (not a record: see :meth:`record`)."""
        return {
            "deviation": self.deviation.to_json(),
            "name": self.name,
            "keyid": self.keyid,
            "time": self.time,
            "comment": self.comment,
            "file": self.file,
            "envelope": self.envelope,
            "identity": self.identity,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Waiver:
        """Read :meth:`to_json` back.

        Raises:
            KeyError, TypeError: a field is missing or mistyped.
        """
        comment = data.get("comment")
        return cls(
            deviation=Deviation.from_json(data["deviation"]),
            name=_json_text(data["name"]),
            keyid=_json_text(data["keyid"]),
            time=_json_text(data["time"]),
            comment=_json_text(comment) if comment is not None else None,
            file=_json_text(data["file"]),
            envelope=_json_text(data["envelope"]),
            identity=_json_text(data.get("identity", "")),
        )

    def record(self) -> dict[str, Any]:
        """The ``deviation.waiver`` record's data in a bundle."""
        return {
            **self.deviation.to_json(),
            "digest": self.deviation.digest,
            "approved_by": {"name": self.name, "keyid": self.keyid, "time": self.time},
            "comment": self.comment,
            "file": self.file,
            "envelope": self.envelope,
        }


def _json_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return str(value)


def change_dir(state_dir: Path, change_id: str) -> Path:
    return state_dir / DEVIATIONS_DIR / check_safe_name(change_id, "change id")


def _text(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadInputError(f"field '{name}' must be a non-empty string", where=where)
    return value


def _expiry(entry: dict[str, Any], where: str) -> str:
    value = entry.get("expiry")
    if isinstance(value, str):
        try:
            # A bare date (quoted or not) lacks the time of day; say so rather than "no Z".
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise BadInputError(
                f"field 'expiry' is not a UTC time: {value!r}", where=where
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise BadInputError("field 'expiry' must end in Z (UTC)", where=where)
        return format_time(value)
    if isinstance(value, date):
        raise BadInputError(f"field 'expiry' needs a time, e.g. {value}T00:00:00Z", where=where)
    raise BadInputError("field 'expiry' is required: a UTC time", where=where)


def load_deviations(state_dir: Path, change_id: str) -> list[Deviation]:
    """The change's deviations; none when it has no ``deviations.yaml``.

    Raises:
        BadInputError: the file is malformed (named with the entry and field); a run with a
            malformed file stops before anything executes.
    """
    path = change_dir(state_dir, change_id) / DEVIATIONS_FILE
    if not path.exists():
        return []
    try:
        doc = yaml.safe_load(path.read_bytes())
    except (OSError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise BadInputError(f"deviations cannot be read: {exc}", where=where) from None
    if not isinstance(doc, dict) or set(doc) - {"version", "change_id", "deviations"}:
        raise BadInputError(
            "top level must be a mapping of version, change_id and deviations", where=str(path)
        )
    if doc.get("version") != 1:
        raise BadInputError("field 'version' must be 1", where=str(path))
    if doc.get("change_id") != change_id:
        raise BadInputError(
            f"field 'change_id' is {doc.get('change_id')!r}, not {change_id}", where=str(path)
        )
    entries = doc.get("deviations")
    if not isinstance(entries, list):
        raise BadInputError("field 'deviations' must be a list", where=str(path))
    found: list[Deviation] = []
    for i, entry in enumerate(entries):
        where = f"{path}: deviations[{i}]"
        if not isinstance(entry, dict):
            raise BadInputError("must be a mapping", where=where)
        unknown = set(entry) - set(_FIELDS) - set(_OPTIONAL)
        if unknown:
            raise BadInputError(f"unknown field(s) {sorted(unknown)}", where=where)
        dev_id = _text(entry, "id", where)
        if not _ID.fullmatch(dev_id):
            raise BadInputError(f"id {dev_id!r} must match {_ID.pattern}", where=where)
        if any(d.id == dev_id for d in found):
            raise BadInputError(f"id {dev_id} listed twice", where=where)
        found.append(
            Deviation(
                id=dev_id,
                test_id=_text(entry, "test_id", where),
                target=_text(entry, "target", where),
                justification=_text(entry, "justification", where),
                expiry=_expiry(entry, where),
                owner=_text(entry, "owner", where),
                raised_by=_text(entry, "raised_by", where) if "raised_by" in entry else None,
            )
        )
    return found


def approve_deviation(
    state_dir: Path,
    change_id: str,
    deviation_id: str,
    signer: Signer,
    trust: TrustStore,
    comment: str | None = None,
) -> Waiver:
    """Sign deviation ``deviation_id`` of ``change_id`` as approved; store the waiver.

    Raises:
        BadInputError: malformed deviations file, unknown id, or already expired.
        TrustError: the key is untrusted, not valid now, or not an approver, or the approver
            raised or owns the deviation (segregation of duties).
    """
    deviations = {d.id: d for d in load_deviations(state_dir, change_id)}
    deviation = deviations.get(deviation_id)
    if deviation is None:
        raise BadInputError(
            f"no deviation {deviation_id!r} in {change_dir(state_dir, change_id) / DEVIATIONS_FILE}"
        )
    key = check_signer(trust, signer.keyid, "approver")
    if {key.identity, key.name} & deviation.raisers():
        raise TrustError(
            f"{key.name} ({key.identity}) raised or owns deviation {deviation_id} "
            "and may not approve it",
            where=str(change_dir(state_dir, change_id) / DEVIATIONS_FILE),
        )
    now = utc_now()
    if deviation.expired_at(now):
        raise BadInputError(f"deviation {deviation_id} expired at {deviation.expiry}")
    payload = {
        "v": 1,
        "kind": WAIVER_KIND,
        "meaning": "approved",
        "change_id": change_id,
        "deviation": deviation.to_json(),
        "digest": deviation.digest,
        **signer_fields(key, now, comment),
    }
    line = sign_document(signer, WAIVER_TYPE, payload)
    rel = (
        f"{DEVIATIONS_DIR}/{change_id}/{WAIVERS_DIR}/"
        f"{deviation_id}-{compact_time(now)}-{key.keyid[:16]}.json"
    )
    write_new(state_dir / rel, line + b"\n")
    stamp_file(trust, state_dir / rel)  # trusted time: the waiver cannot be backdated
    return Waiver(
        deviation, key.name, key.keyid, now, comment, rel, line.decode("utf-8"), key.identity
    )


@dataclass
class DeviationState:
    """A change's deviations with their valid waivers, and why other waivers do not count."""

    deviations: list[Deviation]
    waivers: dict[str, Waiver]  # deviation id -> latest valid waiver
    refused: list[str]

    def covering(
        self, test_id: str, target: str, when: str, not_by: Collection[str] = ()
    ) -> Waiver | None:
        """The waiver that covers a failed ``test_id`` on ``target`` at record time ``when``.

        Args:
            not_by: the run's initiator and executor key id: a waiver approved by either (its
                printed name, identity or key id) covers nothing in that run, because the
                verifier would refuse it (segregation of duties).
        """
        for waiver in self.waivers.values():
            dev = waiver.deviation
            if {waiver.name, waiver.identity, waiver.keyid} & set(not_by):
                continue
            if dev.test_id == test_id and dev.target == target and not dev.expired_at(when):
                return waiver
        return None

    def status(self, deviation: Deviation, when: str) -> str:
        if deviation.id not in self.waivers:
            return "unsigned"
        return "expired" if deviation.expired_at(when) else "approved"

    def to_json(self) -> dict[str, Any]:
        """The state as judged, so a run can hand it on without judging it again."""
        return {
            "deviations": [d.to_json() for d in self.deviations],
            "waivers": {dev_id: w.to_json() for dev_id, w in self.waivers.items()},
            "refused": list(self.refused),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviationState:
        """Read :meth:`to_json` back.

        Raises:
            KeyError, TypeError: a field is missing or mistyped.
        """
        waivers = data["waivers"]
        if not isinstance(waivers, Mapping):
            raise TypeError(f"waivers {waivers!r} is not a mapping")
        return cls(
            deviations=[Deviation.from_json(d) for d in data["deviations"]],
            waivers={_json_text(k): Waiver.from_json(w) for k, w in waivers.items()},
            refused=[_json_text(r) for r in data["refused"]],
        )


def deviation_state(state_dir: Path, change_id: str, trust: TrustStore) -> DeviationState:
    """Load the change's deviations and check every waiver against them and the trust store.

    Raises:
        BadInputError: ``deviations.yaml`` is malformed.
    """
    deviations = load_deviations(state_dir, change_id)
    by_id = {d.id: d for d in deviations}
    folder = change_dir(state_dir, change_id) / WAIVERS_DIR
    waivers: dict[str, Waiver] = {}
    refused: list[str] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rel = path.relative_to(state_dir).as_posix()
        try:
            raw = path.read_bytes()
            doc = open_document(raw, WAIVER_TYPE, trust, "approver", where=rel)
            check_file(trust, path, doc.payload["time"])
        except (VqualError, OSError) as exc:
            refused.append(exc.one_line() if isinstance(exc, VqualError) else f"{rel}: {exc}")
            continue
        payload = doc.payload
        signed = payload.get("deviation")
        dev_id = signed.get("id") if isinstance(signed, dict) else None
        dev = by_id.get(dev_id) if isinstance(dev_id, str) else None
        if payload.get("kind") != WAIVER_KIND or payload.get("change_id") != change_id:
            refused.append(f"{rel}: not a waiver of change {change_id}")
        elif dev is None:
            refused.append(f"{rel}: deviation {dev_id!r} is not in {DEVIATIONS_FILE}")
        elif payload.get("digest") != dev.digest or signed != dev.to_json():
            refused.append(f"{rel}: deviation {dev.id} was edited after it was approved")
        elif {doc.key.identity, doc.key.name} & dev.raisers():
            refused.append(
                f"{rel}: approved by {doc.key.name}, who raised or owns deviation {dev.id}"
            )
        else:
            comment = payload.get("comment")
            waiver = Waiver(
                dev,
                doc.key.name,
                doc.keyid,
                str(payload["time"]),
                comment if isinstance(comment, str) else None,
                rel,
                raw.rstrip(b"\n").decode("utf-8"),
                doc.key.identity,
            )
            known = waivers.get(dev.id)
            if known is None or waiver.time > known.time:
                waivers[dev.id] = waiver
    return DeviationState(deviations, waivers, refused)


def waiver_problems(bundle: Path, trust: TrustStore) -> list[str]:
    """What is wrong with the waivers a bundle relies on (empty when every waiver holds).

    The same judgement :func:`~qualification.evidence.verify.verify_bundle` makes (there a
    problem makes the bundle invalid), for a bundle read with the reader.
    """
    records = read_bundle(bundle).records
    run = [r for r in records if r.kind in RUN_KINDS]
    entries = [
        (f"records.jsonl line {r.line} (seq {r.seq})", r.kind, r.time, r.change_id, r.data)
        for r in records
        if r.kind == WAIVER_KIND or (r.kind == CHECK_RESULT and r.data.get("verdict") == Verdict.WAIVED)
    ]
    executors = {k.identity for k in (trust.get(r.actor) for r in run) if k is not None}
    return judge_waivers(entries, trust, {r.initiator for r in run}, executors)
