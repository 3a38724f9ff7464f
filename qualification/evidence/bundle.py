"""Writing evidence bundles: ``evidence/<change_id>/<run_id>/`` (docs/formats.md).

One :class:`BundleWriter` per run. Each record is canonicalised, signed into a DSSE envelope,
chained to the previous line by SHA-256 and written with one ``write`` call, so a crash leaves
whole lines plus at most one cut line. fsync happens in groups (:meth:`BundleWriter.sync` at
task boundaries, and at :meth:`BundleWriter.seal`), because an fsync per record would cost more
than the signature.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.evidence.canonical import canonical_bytes, canonical_record_bytes
from qualification.evidence.kinds import REGISTRY, SIGNATURE, TIMESTAMP, kind_of
from qualification.evidence.kinds.run_end import RunEndData
from qualification.evidence.kinds.timestamp import TimestampData
from qualification.evidence.records import (
    KINDS,
    MEANING_ROLE,
    RAW_INLINE_MAX,
    RUN_END,
    WRITE_VERSION,
    ZERO_DIGEST,
    check_safe_name,
    utc_now,
)
from qualification.evidence.trusted_time import STAMPED_VERSIONS, stamp_record
from qualification.signing.dsse import RECORD_PAYLOAD_TYPE
from qualification.signing.keys import Signer
from qualification.signing.trusted_tsa import TsaEntry
from qualification.verdict import VERDICTS, Verdict

RECORDS = "records.jsonl"
MANIFEST = "manifest.json"
VIEWS = "views"

#: Sealed files at the top of a bundle; plus anything under data/ and raw/<sha256>.txt.
SEALED_TOP = frozenset({"junit.xml", "report.html", "spec.yaml", "inventory.json"})
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}")
_RAW_FILE = re.compile(r"raw/[0-9a-f]{64}\.txt")

#: Kinds written with append(); run.end by seal(), signature by append_signature().
_APPENDABLE = frozenset(k.name for k in REGISTRY.values() if k.appendable)
_PAE_PREFIX = b"DSSEv1 %d %b " % (len(RECORD_PAYLOAD_TYPE), RECORD_PAYLOAD_TYPE.encode())
_ENV_MID = b'","payloadType":"' + RECORD_PAYLOAD_TYPE.encode() + b'","signatures":[{"keyid":'


def _jstr(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def is_sealed_path(relpath: str) -> bool:
    """Whether ``relpath`` (POSIX, relative) is a file a run may seal into its manifest."""
    if relpath in SEALED_TOP:
        return True
    if _RAW_FILE.fullmatch(relpath):
        return True
    parts = relpath.split("/")
    return (
        len(parts) >= 2
        and parts[0] == "data"
        and all(_COMPONENT.fullmatch(p) and p not in (".", "..") for p in parts[1:])
    )


#: A batch at least this large is canonicalised in a second process (see append_many).
PARALLEL_BATCH = 5000


class _Chain:
    """Record assembly shared by the run writer and signature appends."""

    def __init__(
        self, signer: Signer, change_id: str, run_id: str, initiator: str,
        version: int = WRITE_VERSION,
    ) -> None:
        self.signer = signer
        self.version = version  # a signature continues its bundle's format
        keyid = signer.keyid
        self._head = f'{{"actor":{_jstr(keyid)},"change_id":{_jstr(change_id)},"data":'.encode()
        mid = f',"initiator":{_jstr(initiator)},"kind":'
        self._kinds = {k: f'{mid}{_jstr(k)},"prev":"'.encode() for k in KINDS}
        self._run = f'",{_jstr("run_id")}:{_jstr(run_id)},"seq":'.encode()
        self._env_keyid = _jstr(keyid).encode()

    def line(self, seq: int, prev: str, kind: str, data: Mapping[str, Any]) -> bytes:
        """The signed envelope line (without newline) for one record."""
        return self.line_from_body(seq, prev, kind, canonical_record_bytes(data))

    def line_from_body(self, seq: int, prev: str, kind: str, body: bytes) -> bytes:
        """:meth:`line` for a ``data`` already in canonical form (``canonical_record_bytes``)."""
        # Keys in JCS order: actor, change_id, data, initiator, kind, prev, run_id, seq, time, v.
        payload = b'%b%b%b%b%b%d,"time":"%b","v":%d}' % (
            self._head,
            body,
            self._kinds[kind],
            prev.encode(),
            self._run,
            seq,
            utc_now().encode(),
            self.version,
        )
        sig = self.signer.sign(b"%b%d %b" % (_PAE_PREFIX, len(payload), payload))
        return b'{"payload":"%b%b%b,"sig":"%b"}]}' % (
            base64.b64encode(payload),
            _ENV_MID,
            self._env_keyid,
            base64.b64encode(sig),
        )


class BundleWriter:
    """Writes one run's bundle. Create with :meth:`create`; the first record is ``run.start``."""

    def __init__(
        self,
        path: Path,
        change_id: str,
        run_id: str,
        signer: Signer,
        initiator: str,
        fd: int,
    ) -> None:
        self.path = path
        self.change_id = change_id
        self.run_id = run_id
        self.initiator = initiator
        self.seal_digest: str | None = None
        self._chain = _Chain(signer, change_id, run_id, initiator)
        self._fd: int | None = fd
        self._seq = 0
        self._prev = ZERO_DIGEST
        self._files: dict[str, str] = {}
        self._lock = threading.Lock()
        #: the trust store's TSA: seal() asks it for a token over run.end (None: no TSA)
        self.tsa: TsaEntry | None = None
        #: the sealed run's timestamp record data (None: no TSA was named)
        self.timestamp: TimestampData | None = None

    @classmethod
    def create(
        cls,
        evidence_root: Path,
        change_id: str,
        run_id: str,
        signer: Signer,
        initiator: str,
    ) -> BundleWriter:
        """Create ``evidence_root/change_id/run_id/`` (must not exist) and open its records.

        Raises:
            BadInputError: unsafe change id or run id, empty initiator, or the run exists.
        """
        check_safe_name(change_id, "change id")
        check_safe_name(run_id, "run id")
        if not isinstance(initiator, str) or not initiator.strip():
            raise BadInputError("initiator must be a non-empty string")
        change_dir = Path(evidence_root) / change_id
        change_dir.mkdir(parents=True, exist_ok=True)
        path = change_dir / run_id
        try:
            path.mkdir()
        except FileExistsError:
            raise BadInputError(f"run {run_id} already exists", where=str(path)) from None
        fd = os.open(path / RECORDS, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        return cls(path, change_id, run_id, signer, initiator, fd)

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS

    @property
    def next_seq(self) -> int:
        return self._seq

    @property
    def last_digest(self) -> str:
        """SHA-256 of the last line written (the next record's ``prev``)."""
        return self._prev

    def append(self, kind: str, data: Mapping[str, Any]) -> int:
        """Sign and append one record; written at once (not fsynced). Returns its seq.

        Raises:
            BadInputError: unknown kind, ``run.start`` not first or repeated, ``run.end`` or
                ``signature`` (use :meth:`seal` / :func:`append_signature`), data that is not
                JSON, or the bundle is sealed.
        """
        if kind not in _APPENDABLE:
            if kind in KINDS:
                raise BadInputError(
                    f"{kind} records are written by seal()/append_signature()",
                    where=str(self.path),
                )
            raise BadInputError(f"unknown record kind {kind!r}", where=str(self.path))
        if type(data) is not dict and not isinstance(data, Mapping):
            raise BadInputError(f"{kind} data must be a mapping", where=str(self.path))
        first = REGISTRY[kind].first
        with self._lock:
            if first != (self._seq == 0):
                raise BadInputError(
                    "run.start must be the first record and only the first", where=str(self.path)
                )
            return self._write(kind, data)

    def append_many(self, kind: str, datas: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append many records of one kind; returns their seqs.

        The bytes are exactly those of :meth:`append` one by one. A large batch (at least
        :data:`PARALLEL_BATCH` records) is canonicalised in a second process while this one
        signs and writes in order: the chain makes signing sequential, but canonical JSON of
        each record's ``data`` does not depend on the chain, so it can run on the other core.
        """
        found = kind_of(kind)
        if kind not in _APPENDABLE or found is None or found.first:
            raise BadInputError(f"append_many takes check results and the like, not {kind!r}",
                                where=str(self.path))
        with self._lock:
            if self._seq == 0:
                raise BadInputError("run.start must be the first record", where=str(self.path))
            if len(datas) < PARALLEL_BATCH:
                return [self._write(kind, data) for data in datas]
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                bodies = pool.map(canonical_record_bytes, datas, chunksize=512)
                return [self._write_body(kind, body) for body in bodies]

    def _write(self, kind: str, data: Mapping[str, Any]) -> int:
        return self._write_body(kind, canonical_record_bytes(data))

    def _write_body(self, kind: str, body: bytes) -> int:
        # The hot path: one record costs a signature plus this, so keep it lean.
        fd = self._fd
        if fd is None:
            raise BadInputError("bundle is sealed or closed", where=str(self.path))
        seq = self._seq
        line = self._chain.line_from_body(seq, self._prev, kind, body)
        out = line + b"\n"
        if os.write(fd, out) != len(out):
            # Disk full or similar: the file now ends in a cut line, as after a crash; stop.
            os.close(fd)
            self._fd = None
            raise OSError(f"short write to {self.path / RECORDS}; the run cannot continue")
        self._prev = hashlib.sha256(line).hexdigest()
        self._seq = seq + 1
        return seq

    def sync(self) -> None:
        """fsync the records written so far (group commit: call at task boundaries)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def add_file(self, relpath: str, content: bytes) -> str:
        """Write a sealed file atomically into the bundle; return its SHA-256 (hex).

        Raises:
            BadInputError: ``relpath`` is not a sealed path (see formats.md), or it was
                already written with different content.
        """
        if not is_sealed_path(relpath):
            raise BadInputError(
                f"{relpath!r} is not a sealed bundle file (junit.xml, report.html, spec.yaml, "
                "inventory.json, data/<name>, raw/<sha256>.txt)",
                where=str(self.path),
            )
        digest = hashlib.sha256(content).hexdigest()
        with self._lock:
            if self._fd is None:
                raise BadInputError("bundle is sealed or closed", where=str(self.path))
            known = self._files.get(relpath)
            if known is not None:
                if known != digest:
                    raise BadInputError(
                        f"{relpath} already written with other content", where=str(self.path)
                    )
                return digest
            target = self.path / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, content, fsync=False)
            self._files[relpath] = digest
        return digest

    def store_raw(self, text: str | None) -> str | dict[str, str] | None:
        """Raw probe output for a ``check.result``: inline up to 1024 UTF-8 bytes, else a file.

        Output that is not valid UTF-8 (lone surrogates from ``surrogateescape`` decoding) is
        always stored as a file, byte for byte.
        """
        if text is None:
            return None
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogateescape")
        else:
            if len(data) <= RAW_INLINE_MAX:
                return text
        digest = hashlib.sha256(data).hexdigest()
        rel = f"raw/{digest}.txt"
        self.add_file(rel, data)
        return {"sha256": digest, "file": rel}

    @property
    def files(self) -> dict[str, str]:
        """Sealed files written so far: relative path -> SHA-256."""
        return dict(self._files)

    def seal(self, counts: Mapping[str, int], planned: int, executed: int, verdict: str) -> str:
        """Write ``manifest.json`` and the ``run.end`` record, fsync everything; close.

        Returns:
            The seal digest (SHA-256 of the ``run.end`` line).
        """
        unknown = set(counts) - set(VERDICTS)
        if unknown:
            raise BadInputError(f"run.end counts has unknown verdict(s) {sorted(unknown)}")
        known = Verdict.parse(verdict)
        if known is None:
            raise BadInputError(f"run.end verdict {verdict!r} is not one of {VERDICTS}")
        verdict = known.value  # the plain string: records hold plain JSON types
        full_counts = {v: int(counts.get(v, 0)) for v in VERDICTS}
        with self._lock:
            if self._fd is None:
                raise BadInputError("bundle is sealed or closed", where=str(self.path))
            if self._seq == 0:
                raise BadInputError("cannot seal a bundle without run.start", where=str(self.path))
            manifest = canonical_bytes({"files": dict(sorted(self._files.items())), "v": 1})
            _atomic_write(self.path / MANIFEST, manifest, fsync=True)
            for rel in self._files:
                _fsync_path(self.path / rel)
            data: RunEndData = {
                "manifest_digest": hashlib.sha256(manifest).hexdigest(),
                "counts": full_counts,
                "planned": int(planned),
                "executed": int(executed),
                "verdict": verdict,
            }
            self._write(RUN_END, data)
            os.fsync(self._fd)
            seal = self._prev
            if self.tsa is not None:
                # run.end is durable first: a TSA that hangs never costs the seal.
                self.timestamp = stamp_record(self.tsa, bytes.fromhex(seal), self._seq - 1)
                self._write(TIMESTAMP, self.timestamp)
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            for d in {self.path / Path(rel).parent for rel in self._files} | {
                self.path,
                self.path.parent,
            }:
                _fsync_dir(d)
            self.seal_digest = seal
            return seal

    def close(self) -> None:
        """Close without sealing (a run that stops leaves an incomplete bundle)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    while view:
        view = view[os.write(fd, view) :]


def _atomic_write(target: Path, content: bytes, *, fsync: bool) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, content)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def record_payload(line: bytes) -> dict[str, Any]:
    """Decode the record inside one envelope line without checking its signature."""
    obj = json.loads(line)
    rec = json.loads(base64.b64decode(obj["payload"], validate=True))
    if not isinstance(rec, dict):
        raise TypeError("record is not an object")
    return rec


#: How much of the end of records.jsonl read_seal reads first: run.end and the signatures
#: after it are a few KB, the run before them may be many MB.
_SEAL_TAIL = 1 << 20


def read_seal(records: Path) -> tuple[str, dict[str, Any]] | None:
    """The run.end line's digest and record, or None if the run is not sealed."""
    try:
        with open(records, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _SEAL_TAIL))
            lines = fh.read().split(b"\n")
            if size > _SEAL_TAIL:
                del lines[0]  # may be cut by the window
            found = _seal_in(lines)
            if found is _MORE and size > _SEAL_TAIL:
                # More signatures (or a longer last line) than the window holds: read it all.
                fh.seek(0)
                found = _seal_in(fh.read().split(b"\n"))
    except OSError:
        return None
    return found if isinstance(found, tuple) else None


_MORE = object()


def _seal_in(lines: list[bytes]) -> tuple[str, dict[str, Any]] | None | object:
    """The seal found scanning back over signatures, None, or _MORE (only signatures)."""
    for line in reversed(lines):
        if not line:
            continue
        try:
            rec = record_payload(line)
        except (ValueError, KeyError, TypeError):
            return None
        if rec.get("kind") == RUN_END:
            return hashlib.sha256(line).hexdigest(), rec
        if rec.get("kind") not in (SIGNATURE, TIMESTAMP):
            return None
    return _MORE


def latest_seal(evidence_root: Path, change_id: str) -> str | None:
    """Seal digest of the latest sealed run of ``change_id`` (by its run.end time), or None.

    This reads the records without verifying them; it is what ``run.start.prev_run_seal``
    refers to, and verification of that run is a separate step.
    """
    check_safe_name(change_id, "change id")
    change_dir = Path(evidence_root) / change_id
    if not change_dir.is_dir():
        return None
    best: tuple[str, str, str] | None = None
    for run_dir in change_dir.iterdir():
        if not run_dir.is_dir():
            continue
        found = read_seal(run_dir / RECORDS)
        if found is None:
            continue
        digest, rec = found
        key = (str(rec.get("time", "")), run_dir.name, digest)
        if best is None or key > best:
            best = key
    return best[2] if best else None


def append_signature(
    bundle_path: Path,
    signer: Signer,
    data: Mapping[str, Any],
    *,
    initiator: str | None = None,
    tsa: TsaEntry | None = None,
) -> int:
    """Append a ``signature`` record to a sealed bundle, continuing its chain.

    With ``tsa`` (the trust store's) a format v2 bundle gets a ``timestamp`` record after
    the signature, so the signature cannot be backdated.

    ``data`` holds ``meaning``, ``name``, ``roles`` and ``comment``; ``seal`` (this bundle's
    seal digest) and ``keyid`` (the signer's) are filled in, and refused if given otherwise.
    The record's ``initiator`` defaults to the run's. Trust and separation of duties are the
    caller's and the verifier's business; this only writes.

    Returns:
        The new record's seq.

    Raises:
        BadInputError: bad meaning or fields, or a seal/keyid that does not match.
        EvidenceInvalidError: the bundle is not sealed or its last line is damaged.
    """
    records = Path(bundle_path) / RECORDS
    meaning = data.get("meaning")
    if meaning not in MEANING_ROLE:
        raise BadInputError(f"signature meaning {meaning!r} is not one of {sorted(MEANING_ROLE)}")
    if not isinstance(data.get("name"), str) or not str(data.get("name")).strip():
        raise BadInputError("signature needs the signer's printed name")
    try:
        fd = os.open(records, os.O_RDWR | os.O_APPEND)
    except OSError as exc:
        raise EvidenceInvalidError(f"cannot open records: {exc.strerror}", where=str(records))
    try:
        # Two people signing at once must not interleave lines.
        fcntl.flock(fd, fcntl.LOCK_EX)
        content = records.read_bytes()
        if not content.endswith(b"\n"):
            raise EvidenceInvalidError("last line is cut; verify the bundle", where=str(records))
        lines = content[:-1].split(b"\n")
        try:
            last = record_payload(lines[-1])
        except (ValueError, KeyError, TypeError):
            raise EvidenceInvalidError("last line does not parse", where=str(records)) from None
        found = read_seal(records)
        if found is None:
            raise EvidenceInvalidError("bundle is not sealed (no run.end)", where=str(records))
        seal, end = found
        record = dict(data)
        for field, value in (("seal", seal), ("keyid", signer.keyid)):
            if record.setdefault(field, value) != value:
                raise BadInputError(f"signature {field} {record[field]!r} does not match {value}")
        record.setdefault("roles", [])
        record.setdefault("comment", None)
        chain = _Chain(
            signer, str(last["change_id"]), str(last["run_id"]), initiator or str(end["initiator"]),
            version=int(end["v"]),
        )
        seq = int(last["seq"]) + 1
        line = chain.line(seq, hashlib.sha256(lines[-1]).hexdigest(), SIGNATURE, record)
        _write_all(fd, line + b"\n")
        os.fsync(fd)
        if tsa is not None and chain.version in STAMPED_VERSIONS:
            digest = hashlib.sha256(line).digest()
            stamp = chain.line(seq + 1, digest.hex(), TIMESTAMP, stamp_record(tsa, digest, seq))
            _write_all(fd, stamp + b"\n")
            os.fsync(fd)
    finally:
        os.close(fd)
    return seq
