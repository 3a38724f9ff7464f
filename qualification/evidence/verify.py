"""Verifying evidence bundles (docs/formats.md, "Durability and crashes").

Signature checks dominate (an Ed25519 verification costs about four signatures), so for big
bundles they run in worker processes over byte ranges of ``records.jsonl``; the workers return
only the fields the chain checks need. Chain, trust, roles, kinds, waivers and files are then
judged in order in this process.

Waivers: the executor signs every run record, so a ``waived`` result is only as good as the
approver's own signed waiver the bundle carries in a ``deviation.waiver`` record before it;
:func:`judge_waivers` checks those envelopes against the trust store (docs/review.md).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import multiprocessing
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from qualification.errors import EvidenceInvalidError, VqualError
from qualification.evidence import agreement, trusted_time
from qualification.evidence.bundle import MANIFEST, RECORDS, VIEWS, is_sealed_path, read_seal
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import (
    CHECK_RESULT,
    DEVIATION_RAISED,
    RUN_END,
    WAIVER,
    RecordKind,
    kind_of,
)
from qualification.evidence.kinds.base import WaiverEntry
from qualification.evidence.reader import check_record_fields, list_files, parse_manifest
from qualification.evidence.records import KNOWN_VERSIONS, ZERO_DIGEST, parse_time

# Re-exported: callers take the result and its statuses from here.
from qualification.evidence.result import INCOMPLETE, INVALID, VALID, VerificationResult
from qualification.signing.dsse import RECORD_PAYLOAD_TYPE, parse_envelope, verify_envelope
from qualification.signing.trust import TrustedKey, TrustStore

__all__ = [
    "DEVIATION_FIELDS",
    "DEVIATION_OPTIONAL",
    "INCOMPLETE",
    "INVALID",
    "MAX_PROBLEMS",
    "PARALLEL_MIN_LINES",
    "VALID",
    "WAIVER_KIND",
    "WAIVER_TYPE",
    "SignedDocument",
    "VerificationResult",
    "judge_waivers",
    "open_signed_document",
    "verify_bundle",
]

#: Below this many lines, worker start-up costs more than it saves.
PARALLEL_MIN_LINES = 2000
_CHUNK_LINES = 1000
#: Problems listed in full; beyond this only their number is given.
MAX_PROBLEMS = 200

#: An approver's signed waiver of a deviation (docs/review.md), and the record that copies it.
WAIVER_TYPE = "application/vnd.vqual.waiver+json"
WAIVER_KIND = WAIVER
#: A deviation's fields; the optional ones are part of its content only when given, so
#: deviations and waivers written before a field existed keep their digests.
DEVIATION_FIELDS = ("id", "test_id", "target", "justification", "expiry", "owner")
DEVIATION_OPTIONAL = ("raised_by",)


# ---------------------------------------------------------------- per-line work (workers)

_worker_keys: dict[str, Ed25519PublicKey] = {}


def _init_worker(raw_keys: Mapping[str, bytes]) -> None:
    global _worker_keys
    _worker_keys = {k: Ed25519PublicKey.from_public_bytes(v) for k, v in raw_keys.items()}


# What a worker returns per line: (error, verified keyid, record fields, kind extras)
_LineResult = tuple[str | None, str | None, dict[str, Any] | None]


# A record envelope in canonical form, as the writer makes it, is taken apart by slicing
# instead of a JSON parse and a re-serialisation; anything else goes through parse_envelope,
# which also says what is wrong.
_ENV_HEAD = b'{"payload":"'
_ENV_MID = b'","payloadType":"' + RECORD_PAYLOAD_TYPE.encode() + b'","signatures":[{"keyid":"'
_ENV_SIG = b'","sig":"'
_ENV_TAIL = b'"}]}'
_HEX64 = re.compile(rb"[0-9a-f]{64}")
_RECORD_PAE = b"DSSEv1 %d %b " % (len(RECORD_PAYLOAD_TYPE), RECORD_PAYLOAD_TYPE.encode())


def _split_envelope(line: bytes) -> tuple[bytes, str, bytes] | str:
    """(payload, keyid, signature) of a one-signature record envelope, or what is wrong."""
    mid = line.find(_ENV_MID)
    if line.startswith(_ENV_HEAD) and line.endswith(_ENV_TAIL) and mid > 0:
        b64 = line[len(_ENV_HEAD) : mid]
        rest = line[mid + len(_ENV_MID) : -len(_ENV_TAIL)]
        keyid, sep, b64sig = rest[:64], rest[64 : 64 + len(_ENV_SIG)], rest[64 + len(_ENV_SIG) :]
        if sep == _ENV_SIG and _HEX64.fullmatch(keyid):
            try:
                payload = binascii.a2b_base64(b64)
                sig = binascii.a2b_base64(b64sig)
            except binascii.Error:
                return "envelope base64 is malformed"
            # The decoder skips stray characters and low bits; the round trip admits only the
            # canonical spelling, which also validates the alphabet.
            if (
                binascii.b2a_base64(payload, newline=False) == b64
                and binascii.b2a_base64(sig, newline=False) == b64sig
            ):
                return payload, keyid.decode(), sig
            return "envelope base64 is malformed or not canonical"
    try:
        env = parse_envelope(line)
    except EvidenceInvalidError as exc:
        return exc.message
    if env.payload_type != RECORD_PAYLOAD_TYPE:
        return f"payload type {env.payload_type!r} is not a vqual record"
    if len(env.signatures) != 1:
        return "envelope must carry exactly one signature"
    return env.payload, env.signatures[0].keyid, env.signatures[0].sig


def _check_line(line: bytes, number: int, keys: Mapping[str, Ed25519PublicKey]) -> _LineResult:
    parts = _split_envelope(line)
    if isinstance(parts, str):
        return parts, None, None
    payload, keyid, sig = parts
    key = keys.get(keyid)
    verified: str | None = None
    if key is not None:
        try:
            key.verify(sig, b"%b%d %b" % (_RECORD_PAE, len(payload), payload))
            verified = keyid
        except InvalidSignature:
            pass
    try:
        rec = json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "record is not JSON", verified, None
    try:
        check_record_fields(rec, "")
        if canonical_bytes(rec) != payload:
            return "record is not in canonical JSON form", verified, None
    except VqualError as exc:
        return exc.message, verified, None
    rec["_keyid"] = keyid
    # Keep only what the kind's rule needs: less to send back from a worker.
    kind = kind_of(rec["kind"])
    rec["data"] = kind.slim(rec["data"]) if kind else {"target": rec["data"].get("target")}
    return None, verified, rec


def _check_range(path: str, start: int, end: int, first: int) -> list[_LineResult]:
    with open(path, "rb") as fh:
        fh.seek(start)
        chunk = fh.read(end - start)
    lines = chunk.split(b"\n")
    return [_check_line(line, first + i + 1, _worker_keys) for i, line in enumerate(lines)]


def _ranges(lines: list[bytes]) -> Iterator[tuple[int, int, int]]:
    """(start byte, end byte, first index) of chunks of whole lines."""
    offset = 0
    for first in range(0, len(lines), _CHUNK_LINES):
        part = lines[first : first + _CHUNK_LINES]
        size = sum(len(x) + 1 for x in part) - 1
        yield offset, offset + size, first
        offset += size + 1


def _check_all(
    path: Path, lines: list[bytes], keys: dict[str, Ed25519PublicKey], workers: int
) -> list[_LineResult]:
    if workers <= 1 or len(lines) < 2:
        return [_check_line(line, i + 1, keys) for i, line in enumerate(lines)]
    raw = {k: v.public_bytes_raw() for k, v in keys.items()}
    # fork is cheap and needs no importable __main__, but is only safe without other threads
    # (Ansible, a web server); otherwise spawn.
    method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
    ctx = multiprocessing.get_context(method)
    out: list[_LineResult] = []
    try:
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(raw,)
        ) as ex:
            futures = [
                ex.submit(_check_range, str(path), s, e, first) for s, e, first in _ranges(lines)
            ]
            for fut in futures:
                out.extend(fut.result())
    except BrokenProcessPool:
        # Workers could not start (e.g. spawn from an unguarded script): do it here.
        return [_check_line(line, i + 1, keys) for i, line in enumerate(lines)]
    return out


# ---------------------------------------------------------------- the verdict


def verify_bundle(
    path: Path, trust: TrustStore, *, workers: int | None = None
) -> VerificationResult:
    """Verify the bundle at ``path`` against ``trust``.

    Args:
        path: the run directory ``evidence/<change_id>/<run_id>``.
        trust: keys trusted to sign; only these count.
        workers: processes for signature checks; None uses all cores from
            ``PARALLEL_MIN_LINES`` lines on, 1 keeps everything in this process. Workers are
            forked when this process runs no other threads, else spawned (which re-imports
            ``__main__``: scripts need the ``if __name__ == "__main__"`` guard); if they cannot
            start, the check runs here.

    Returns:
        The result; ``status`` is valid, invalid or incomplete, ``problems`` name the line,
        seq or file and why.
    """
    path = Path(path)
    res = VerificationResult(path=path, status=INVALID, trust_digest=trust.digest)
    rpath = path / RECORDS
    try:
        content = rpath.read_bytes()
    except OSError as exc:
        res.problems.append(f"{RECORDS}: cannot be read ({exc.strerror})")
        return res
    if not content:
        res.problems.append(f"{RECORDS}: is empty")
        return res

    lines = content.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        lines.append(tail)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(lines) >= PARALLEL_MIN_LINES else 1
    results = _check_all(rpath, lines, trust.public_keys(), workers)

    # The last line without newline: cut by a crash (does not parse) or complete but
    # unterminated; both are judged once we know whether run.end exists.
    cut_tail = bool(tail) and results[-1][0] is not None
    if cut_tail:
        results.pop()
        lines.pop()

    digests = [hashlib.sha256(line).hexdigest() for line in lines]
    res.records = len(lines)
    state = _ChainState(res, trust)
    for i, (err, keyid, rec) in enumerate(results):
        state.line(i, err, keyid, rec, digests)
    trusted_time.check_bundle(res, trust, results, digests, res.format_version)
    res.waiver_problems = judge_waivers(
        state.waiver_entries, trust, state.initiators, state.executor_identities
    )
    res.problems.extend(res.waiver_problems)

    if state.end_seen:
        if tail:
            what = "is cut" if cut_tail else "has no newline at the end"
            number = len(lines) + 1 if cut_tail else len(lines)
            res.problems.append(f"{RECORDS} line {number}: {what} after run.end")
        manifest = _check_files(path, state, res)
        _check_agreement(path, state, res, manifest)
    else:
        _check_files_unsealed(path, state, res)
    _check_prev_run(path, res)
    _conclude(res, state, path, any_line=bool(lines))
    return res


def _check_agreement(
    path: Path, state: _ChainState, res: VerificationResult, manifest: Mapping[str, str]
) -> None:
    """run.end's counts and the sealed JUnit and report against the records
    (:mod:`qualification.evidence.agreement`)."""
    # A planned test without a result is shown as an error by every renderer.
    unrecorded = [
        (str(t.get("test_id")), str(t.get("target")), str(t.get("protocol") or "IQ"), "error")
        for t in state.planned
        if (t.get("test_id"), t.get("target")) not in state.done
    ]
    rows = state.results + unrecorded
    if state.run_end is not None:
        res.problems.extend(
            agreement.count_problems(
                state.run_end,
                state.results,
                len(state.planned),
                state.deviations_raised,
                len(unrecorded),
            )
        )
    for name, judge in (
        (agreement.JUNIT, agreement.junit_problems),
        (agreement.REPORT, agreement.report_problems),
    ):
        f = path / name
        strict = (res.format_version or 1) >= 2  # v2: no placeholders (docs/formats.md)
        if strict and name not in manifest:
            res.problems.append(f"{name}: not sealed; format v2 seals it with every test")
        elif name in manifest and f.is_file() and not f.is_symlink():
            data = f.read_bytes()
            if strict and not data.strip():
                res.problems.append(f"{name}: is empty; format v2 seals it with every test")
                continue
            problems, warnings = judge(data, rows, strict=strict)
            res.problems.extend(problems)
            res.warnings.extend(warnings)


def _check_prev_run(path: Path, res: VerificationResult) -> None:
    """``prev_run_seal`` must be the seal of a run of this change kept next to this one;
    when no other run is there, that it could not be checked is a warning."""
    prev = res.prev_run_seal
    if not prev:
        return
    seals = {}
    for other in sorted(path.parent.iterdir()) if path.parent.is_dir() else ():
        if other != path and other.is_dir() and not other.is_symlink():
            found = read_seal(other / RECORDS)
            seals[other.name] = found[0] if found else None
    if not seals:
        res.warnings.append(
            f"run.start prev_run_seal {prev[:16]}: no earlier run of this change is here to check"
        )
    elif prev not in seals.values():
        res.problems.append(
            f"run.start: prev_run_seal {prev[:16]} is the seal of no run of "
            f"{path.parent.name} here (deleted, replaced, rewritten or cut before its run.end)"
        )


def _conclude(res: VerificationResult, state: _ChainState, path: Path, *, any_line: bool) -> None:
    """The status from the problems found, and what an incomplete run lacks."""
    problems = res.problems
    if res.run_id is not None and path.name != res.run_id:
        res.warnings.append(f"directory name {path.name} differs from run id {res.run_id}")
    res.planned_tests = state.planned
    if len(problems) > MAX_PROBLEMS:
        extra = len(problems) - MAX_PROBLEMS
        del problems[MAX_PROBLEMS:]
        problems.append(f"... and {extra} more problems")
    if problems:
        res.status = INVALID
    elif state.end_seen:
        res.status = VALID
    else:
        # Every complete line verifies and at most the last is cut: a crashed run.
        res.status = INCOMPLETE
        res.missing_tests = [
            t for t in state.planned if (t.get("test_id"), t.get("target")) not in state.done
        ]
        res.planned = len(state.planned)
        if not any_line:
            res.warnings.append("no complete record: the run crashed before run.start")
        if (path / MANIFEST).is_file():
            # BundleWriter.seal writes the manifest, then run.end: a run cut after its seal
            # looks like this, and so does a crash in that moment (docs/formats.md).
            res.warnings.append(
                f"{MANIFEST} is present: the run reached its seal; either it crashed while "
                "sealing or its run.end was removed (a later run citing it tells which)"
            )


class _ChainState:
    """Judges records in order (a :class:`~qualification.evidence.kinds.ChainView`); each
    kind's own rule comes from the registry. Collects what the result reports."""

    def __init__(self, res: VerificationResult, trust: TrustStore) -> None:
        self.res = res
        self.trust = trust
        self.end_seen = False
        self.planned: list[dict[str, Any]] = []
        self.planned_ids: set[str] = set()
        self.done: set[tuple[Any, Any]] = set()
        self.raw_refs: list[tuple[str, str, str]] = []  # (where, file, sha256)
        self.manifest_digest: str | None = None
        self.executor_identities: set[str] = set()
        self.initiator: str | None = None
        self.initiators: set[str] = set()
        #: (where, kind, time, change id, data) of waiver records and waived results, in order
        self.waiver_entries: list[WaiverEntry] = []
        self._status_cache: dict[tuple[str, str, str], tuple[bool, str, bool]] = {}
        #: (test id, target, protocol, verdict) of each check.result, in order
        self.results: list[agreement.ExpectedRow] = []
        self.deviations_raised = 0
        self.run_end: dict[str, Any] | None = None

    def problem(self, where: str, text: str) -> None:
        self.res.problems.append(f"{where}: {text}")

    def line(
        self,
        i: int,
        err: str | None,
        keyid: str | None,
        rec: dict[str, Any] | None,
        digests: list[str],
    ) -> None:
        """Judge line ``i``: what every record must hold, then its kind's rule."""
        where = f"{RECORDS} line {i + 1}"
        if err is not None or rec is None:
            self.problem(where, err or "does not parse")
            return
        where = f"{RECORDS} line {i + 1} (seq {rec['seq']})"
        self._envelope_and_chain(i, where, keyid, rec, digests)
        when = parse_time(rec["time"])
        if when is None:
            self.problem(where, f"time {rec['time']!r} is not UTC YYYY-MM-DDTHH:MM:SS.ffffffZ")
        kind = kind_of(rec["kind"])
        if kind is None:
            self.problem(where, f"unknown record kind {rec['kind']!r}")
            return
        role = kind.signer_role(self, where, rec["data"])
        if keyid is not None and when is not None and role is not None:
            self._check_key(where, keyid, rec["time"], when, role)
        self._judge(kind, i, where, keyid, rec, digests[i])

    def _envelope_and_chain(
        self, i: int, where: str, keyid: str | None, rec: dict[str, Any], digests: list[str]
    ) -> None:
        if keyid is None:
            self.problem(
                where,
                f"signature by key {rec['_keyid'][:16]} does not verify with "
                "any key in the trust store",
            )
        elif rec["actor"] != keyid:
            self.problem(where, f"actor {rec['actor'][:16]} is not the signing key {keyid[:16]}")
        if rec["v"] not in KNOWN_VERSIONS:
            self.problem(where, f"unknown format version {rec['v']}")
        elif i == 0:
            self.res.format_version = rec["v"]
        elif rec["v"] != self.res.format_version:
            self.problem(where, f"format v{rec['v']} record in a v{self.res.format_version} bundle")
        if rec["seq"] != i:
            self.problem(where, f"seq {rec['seq']} where {i} was expected")
        expect_prev = digests[i - 1] if i > 0 else ZERO_DIGEST
        if rec["prev"] != expect_prev:
            self.problem(where, "prev does not match the previous line (chain broken)")
        res = self.res
        if i == 0:
            res.change_id, res.run_id = rec["change_id"], rec["run_id"]
            self.initiator = rec["initiator"]
        elif (rec["change_id"], rec["run_id"]) != (res.change_id, res.run_id):
            self.problem(
                where,
                f"belongs to {rec['change_id']}/{rec['run_id']}, not {res.change_id}/{res.run_id}",
            )

    def _judge(
        self,
        kind: RecordKind,
        i: int,
        where: str,
        keyid: str | None,
        rec: dict[str, Any],
        digest: str,
    ) -> None:
        """Where the kind may stand in the run, then the kind's own rule."""
        misplaced_first = kind.first and i != 0
        if misplaced_first:
            self.problem(where, f"{kind.name} is only allowed as the first record")
        elif not kind.first and i == 0:
            self.problem(where, f"first record is {kind.name}, not run.start")
        if kind.after_run_end:
            if not self.end_seen:
                self.problem(where, f"{kind.name} record before run.end")
        else:
            # A run record: it must precede run.end, and its signer executed the run.
            if self.end_seen:
                self.problem(
                    where, f"{kind.name} record after run.end (only signatures may follow)"
                )
            if keyid is not None:
                key = self.trust.get(keyid)
                if key is not None:
                    self.executor_identities.add(key.identity)
            self.initiators.add(rec["initiator"])
        if not misplaced_first:
            kind.verify(self, where, rec, digest, keyid)
        self._account(kind, rec)

    def _account(self, kind: RecordKind, rec: dict[str, Any]) -> None:
        """Keep what agreement.count_problems recounts run.end from."""
        name, data = kind.name, rec["data"]
        if name == CHECK_RESULT:
            self.results.append(
                (str(data.get("test_id")), str(data.get("target")),
                 str(data.get("protocol") or "IQ"), str(data.get("verdict")))
            )
        elif name == DEVIATION_RAISED:
            self.deviations_raised += 1
        elif name == RUN_END and self.run_end is None:
            self.run_end = data
            self.res.ended = rec["time"]
        elif kind.first and rec["seq"] == 0:
            prev = data.get("prev_run_seal")
            self.res.prev_run_seal = prev if isinstance(prev, str) else None
            self.res.started = rec["time"]

    def _check_key(self, where: str, keyid: str, stamp: str, when: datetime, role: str) -> None:
        cache_key = (keyid, stamp, role)
        status = self._status_cache.get(cache_key)
        if status is None:
            # By the trust store version in force at the record's time (TrustTimeline).
            ok, reason = self.trust.key_status_at(keyid, when)
            status = (ok, reason, self.trust.role_at(keyid, role, when))
            if len(self._status_cache) < 100_000:
                self._status_cache[cache_key] = status
        ok, reason, has_role = status
        if not ok:
            self.problem(where, f"{reason} (signed {stamp})")
        if not has_role:
            self.problem(where, f"key {keyid[:16]} does not hold role {role} in the trust store")
        key = self.trust.get(keyid)
        if key is not None and key.throwaway:
            note = f"key {keyid[:16]} ({key.name}) is a throwaway key: not for GxP use"
            if note not in self.res.warnings:
                self.res.warnings.append(note)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_files(path: Path, state: _ChainState, res: VerificationResult) -> dict[str, str]:
    """The manifest and the sealed files against it; returns the manifest read."""
    problems = res.problems
    mpath = path / MANIFEST
    if not mpath.is_file() or mpath.is_symlink():
        problems.append(f"{MANIFEST}: missing")
        manifest: dict[str, str] = {}
    else:
        data = mpath.read_bytes()
        if state.manifest_digest is not None and (
            hashlib.sha256(data).hexdigest() != state.manifest_digest
        ):
            problems.append(f"{MANIFEST}: digest does not match run.end manifest_digest")
        try:
            manifest = parse_manifest(data, where=MANIFEST)
        except EvidenceInvalidError as exc:
            problems.append(exc.one_line())
            manifest = {}
    for rel, digest in sorted(manifest.items()):
        if not is_sealed_path(rel):
            problems.append(f"{MANIFEST}: lists {rel!r}, which is not a sealed bundle path")
            continue
        f = path / rel
        if f.is_symlink() or not f.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
        elif _sha256_file(f) != digest:
            problems.append(f"{rel}: content does not match its manifest digest")
    for rel in list_files(path):
        if rel in (RECORDS, MANIFEST) or rel.startswith(VIEWS + "/"):
            continue
        if (path / rel).is_symlink():
            problems.append(f"{rel}: symlinks are not allowed in a bundle")
        elif rel not in manifest:
            problems.append(f"{rel}: file not listed in the manifest")
    for where, rel, sha in state.raw_refs:
        if manifest.get(rel) != sha:
            problems.append(f"{where}: raw output {rel} is not sealed in the manifest")
    return manifest


def _check_files_unsealed(path: Path, state: _ChainState, res: VerificationResult) -> None:
    """A run without run.end: files may be missing, but none may be foreign or altered."""
    for rel in list_files(path):
        if rel in (RECORDS, MANIFEST) or rel.startswith(VIEWS + "/"):
            continue
        name = rel.rsplit("/", 1)[-1]
        if name.startswith(".") and ".tmp-" in name:
            res.warnings.append(f"{rel}: temporary file left by the interrupted run")
            continue
        if (path / rel).is_symlink() or not is_sealed_path(rel):
            res.problems.append(f"{rel}: not a file a run writes")
    for where, rel, sha in state.raw_refs:
        f = path / rel
        if not f.is_file() or _sha256_file(f) != sha:
            res.problems.append(f"{where}: raw output {rel} is missing or altered")


# ---------------------------------------------------------------- signed documents, waivers


@dataclass(frozen=True)
class SignedDocument:
    """A document whose signature, signer validity and role have been checked."""

    payload: dict[str, Any]
    keyid: str
    key: TrustedKey
    digest: str  # SHA-256 of the envelope bytes as stored (without newline)


def open_signed_document(
    data: bytes, payload_type: str, trust: TrustStore, role: str, *, where: str
) -> SignedDocument:
    """Check one stored envelope (an approval, a waiver) against the trust store.

    The payload is a canonical JSON object with the signing ``time``, the signer's ``keyid``
    and printed ``name``; it is judged like a record: the signature verifies with a trusted
    key that was valid at that time, holds ``role`` and whose holder is ``name``.

    Raises:
        EvidenceInvalidError: malformed, wrong type, a signature that does not verify with a
            trusted key, a key not valid at the document's time, or without ``role``.
    """
    line = data.rstrip(b"\n")
    env = parse_envelope(line, where=where)
    if env.payload_type != payload_type:
        raise EvidenceInvalidError(
            f"payload type {env.payload_type!r} is not {payload_type}", where=where
        )
    if len(env.signatures) != 1:
        raise EvidenceInvalidError("must carry exactly one signature", where=where)
    keyid = verify_envelope(env, trust.public_keys())
    if keyid is None:
        raise EvidenceInvalidError(
            f"signature by key {env.signatures[0].keyid[:16]} does not verify with any key in "
            "the trust store",
            where=where,
        )
    try:
        payload = json.loads(env.payload)
    except (ValueError, UnicodeDecodeError):
        raise EvidenceInvalidError("payload is not JSON", where=where) from None
    if not isinstance(payload, dict) or canonical_bytes(payload) != env.payload:
        raise EvidenceInvalidError("payload is not a canonical JSON object", where=where)
    when = parse_time(payload.get("time"))
    if when is None:
        raise EvidenceInvalidError("payload time is missing or not in record form", where=where)
    if payload.get("keyid") != keyid:
        raise EvidenceInvalidError("payload keyid differs from the signing key", where=where)
    key = trust.get(keyid)
    assert key is not None  # verify_envelope only answers with trusted keys
    # Judged by the trust store version in force at the document's time (TrustTimeline).
    ok, reason = trust.key_status_at(keyid, when)
    if not ok:
        raise EvidenceInvalidError(f"{reason} (signed {payload['time']})", where=where)
    if not trust.role_at(keyid, role, when):
        raise EvidenceInvalidError(f"key {keyid[:16]} does not hold the {role} role", where=where)
    if payload.get("name") != key.name:
        raise EvidenceInvalidError(
            f"printed name {payload.get('name')!r} is not the key holder {key.name!r}", where=where
        )
    return SignedDocument(payload, keyid, key, hashlib.sha256(line).hexdigest())


def judge_waivers(
    entries: Iterable[tuple[str, str, str, str, dict[str, Any]]],
    trust: TrustStore,
    initiators: set[str],
    executors: set[str],
) -> list[str]:
    """What is wrong with the waivers a run relies on (empty when every waiver holds).

    Each ``deviation.waiver`` record's embedded envelope must be an approver's, valid when
    signed, over the same deviation content and change; its approver must neither raise nor
    own the deviation nor have initiated the run (identity or printed name) or signed its run
    records. Every ``waived`` result must name a deviation waived by such a record earlier in
    the bundle, for that test and target, before the deviation's expiry.

    Args:
        entries: ``(where, kind, time, change id, data)`` of the bundle's ``deviation.waiver``
            records and ``waived`` results, in record order.
        initiators: the run records' initiators.
        executors: identities of the keys that signed run records.
    """
    problems: list[str] = []
    waived_by: dict[str, dict[str, Any]] = {}
    for where, kind, time, change_id, data in entries:
        if kind == WAIVER_KIND:
            try:
                doc = open_signed_document(
                    str(data.get("envelope", "")).encode("utf-8"),
                    WAIVER_TYPE,
                    trust,
                    "approver",
                    where=where,
                )
            except VqualError as exc:
                problems.append(f"waiver {data.get('id')}: {exc.one_line()}")
                continue
            fields = {f: data.get(f) for f in DEVIATION_FIELDS}
            fields.update({f: data[f] for f in DEVIATION_OPTIONAL if f in data})
            payload = doc.payload
            if (
                payload.get("kind") != WAIVER_KIND
                or payload.get("change_id") != change_id
                or payload.get("deviation") != fields
                or payload.get("digest") != data.get("digest")
                or payload.get("digest") != hashlib.sha256(canonical_bytes(fields)).hexdigest()
            ):
                problems.append(
                    f"{where}: waiver {data.get('id')} does not match its signed envelope"
                )
                continue
            approver = {doc.key.identity, doc.key.name}
            if approver & {fields["owner"], fields.get("raised_by")}:
                problems.append(
                    f"{where}: waiver {data.get('id')} is approved by {doc.key.name}, "
                    "who raised or owns the deviation"
                )
                continue
            if approver & initiators or doc.key.identity in executors:
                problems.append(
                    f"{where}: waiver {data.get('id')} is approved by {doc.key.name}, "
                    "who initiated or executed this run"
                )
                continue
            waived_by[str(data.get("id"))] = fields
        else:
            dev_id = data.get("deviation")
            dev = waived_by.get(str(dev_id)) if dev_id else None
            if dev is None:
                problems.append(
                    f"{where}: waived by {dev_id!r}, which no valid waiver before it approves"
                )
            elif (dev.get("test_id"), dev.get("target")) != (
                data.get("test_id"),
                data.get("target"),
            ):
                problems.append(f"{where}: deviation {dev_id} is for another test or target")
            elif time >= str(dev.get("expiry")):
                problems.append(f"{where}: deviation {dev_id} had expired at {dev.get('expiry')}")
    return problems
