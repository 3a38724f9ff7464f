"""Reading evidence bundles: decoded records and sealed files, without verifying them.

Reports and audits read with :func:`read_bundle`; whether the bundle can be trusted is
:func:`qualification.evidence.verify.verify_bundle`'s answer, which callers check first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import EvidenceInvalidError
from qualification.evidence.bundle import MANIFEST, RECORDS, VIEWS
from qualification.evidence.records import CHECK_RESULT, RUN_END, RUN_START, SIGNATURE
from qualification.signing.dsse import parse_envelope


@dataclass(frozen=True)
class Record:
    """One decoded record; ``line`` is 1-based, ``digest`` the SHA-256 of its line."""

    line: int
    digest: str
    keyid: str
    v: int
    seq: int
    prev: str
    time: str
    change_id: str
    run_id: str
    actor: str
    initiator: str
    kind: str
    data: dict[str, Any]


@dataclass
class Bundle:
    """A bundle as read from disk."""

    path: Path
    records: list[Record]
    manifest: dict[str, str] | None
    files: list[str]  # every file present, relative POSIX paths, sorted
    truncated: bool = False  # the last line is cut (a crashed run)
    _by_kind: dict[str, list[Record]] = field(default_factory=dict, repr=False)

    def of_kind(self, kind: str) -> list[Record]:
        if not self._by_kind:
            for rec in self.records:
                self._by_kind.setdefault(rec.kind, []).append(rec)
        return self._by_kind.get(kind, [])

    @property
    def run_start(self) -> Record | None:
        found = self.of_kind(RUN_START)
        return found[0] if found else None

    @property
    def run_end(self) -> Record | None:
        found = self.of_kind(RUN_END)
        return found[0] if found else None

    @property
    def seal_digest(self) -> str | None:
        end = self.run_end
        return end.digest if end else None

    @property
    def check_results(self) -> list[Record]:
        return self.of_kind(CHECK_RESULT)

    @property
    def signatures(self) -> list[Record]:
        return self.of_kind(SIGNATURE)

    @property
    def change_id(self) -> str | None:
        return self.records[0].change_id if self.records else None

    @property
    def run_id(self) -> str | None:
        return self.records[0].run_id if self.records else None

    def read_file(self, relpath: str) -> bytes:
        """Bytes of a bundle file, refusing paths that leave the bundle."""
        target = (self.path / relpath).resolve()
        if self.path.resolve() not in target.parents:
            raise EvidenceInvalidError(f"{relpath} is outside the bundle", where=str(self.path))
        return target.read_bytes()


def decode_record(line: bytes, number: int) -> Record:
    """Decode one envelope line (1-based ``number`` for messages); no signature check.

    Raises:
        EvidenceInvalidError: the line or its record is malformed.
    """
    where = f"{RECORDS} line {number}"
    env = parse_envelope(line, where=where)
    try:
        rec = json.loads(env.payload)
    except (ValueError, UnicodeDecodeError):
        raise EvidenceInvalidError("record is not JSON", where=where) from None
    return record_from_obj(rec, number, hashlib.sha256(line).hexdigest(), env.signatures[0].keyid)


_FIELDS = {
    "v": int,
    "seq": int,
    "prev": str,
    "time": str,
    "change_id": str,
    "run_id": str,
    "actor": str,
    "initiator": str,
    "kind": str,
    "data": dict,
}


def check_record_fields(rec: Any, where: str) -> None:
    """Raise unless ``rec`` is an object with exactly the record fields, of their types."""
    if type(rec) is dict and rec.keys() == _FIELDS.keys():
        for name, typ in _FIELDS.items():
            if type(rec[name]) is not typ:  # also refuses bool for int
                raise EvidenceInvalidError(
                    f"record field {name} must be {typ.__name__}", where=where
                )
        return
    if not isinstance(rec, dict):
        raise EvidenceInvalidError("record is not a JSON object", where=where)
    missing = [k for k in _FIELDS if k not in rec]
    if missing:
        raise EvidenceInvalidError(f"record lacks field(s) {', '.join(missing)}", where=where)
    extra = sorted(set(rec) - set(_FIELDS))
    raise EvidenceInvalidError(f"record has unknown field(s) {', '.join(extra)}", where=where)


def record_from_obj(rec: Any, number: int, digest: str, keyid: str) -> Record:
    check_record_fields(rec, f"{RECORDS} line {number}")
    return Record(line=number, digest=digest, keyid=keyid, **rec)


def list_files(path: Path) -> list[str]:
    """Every file and symlink under ``path``, as sorted relative POSIX paths."""
    out = []
    for p in path.rglob("*"):
        if p.is_symlink() or not p.is_dir():
            out.append(p.relative_to(path).as_posix())
    return sorted(out)


def read_bundle(path: str | Path) -> Bundle:
    """Read a bundle's records and file list; a cut last line is tolerated (``truncated``).

    Raises:
        EvidenceInvalidError: no records file, a malformed complete line, or a malformed
            manifest.
    """
    p = Path(path)
    try:
        content = (p / RECORDS).read_bytes()
    except OSError as exc:
        raise EvidenceInvalidError(f"cannot read {RECORDS}: {exc.strerror}", where=str(p)) from None
    lines = content.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records = [decode_record(line, i + 1) for i, line in enumerate(lines)]
    truncated = False
    if tail:
        try:
            records.append(decode_record(tail, len(lines) + 1))
        except EvidenceInvalidError:
            truncated = True
    manifest: dict[str, str] | None = None
    mpath = p / MANIFEST
    if mpath.is_file():
        manifest = parse_manifest(mpath.read_bytes(), where=str(mpath))
    files = [f for f in list_files(p) if f != RECORDS and not f.startswith(VIEWS + "/")]
    return Bundle(p, records, manifest, files, truncated)


def parse_manifest(data: bytes, *, where: str) -> dict[str, str]:
    """The ``files`` map of a manifest.

    Raises:
        EvidenceInvalidError: not JSON or not ``{"files": {path: sha256}, "v": 1}``.
    """
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise EvidenceInvalidError("manifest is not JSON", where=where) from None
    if not isinstance(obj, dict) or set(obj) != {"files", "v"} or obj["v"] != 1:
        raise EvidenceInvalidError('manifest must be {"files": {...}, "v": 1}', where=where)
    files = obj["files"]
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise EvidenceInvalidError("manifest files must map paths to digests", where=where)
    return dict(files)
