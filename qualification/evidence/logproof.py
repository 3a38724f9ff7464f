"""The transparency log as a client judges it: what its leaves are, and a *log proof*.

A leaf is canonical JSON (RFC 8785) naming the run and what was accepted (a seal, a record
after the seal, a void); its hash is RFC 6962's leaf hash, SHA-256 of ``0x00 || leaf``. A
client recomputes the leaves of a bundle it holds (:func:`bundle_leaves`) and checks the
server's answers for them: one JSON document (``vqual.log-proof/v1``) with the signed
checkpoint, an inclusion proof per leaf and a consistency proof from a checkpoint seen
before. :func:`check_proof` judges it, online or offline alike (pymerkle verifies the proofs;
it is imported only here, when a proof is judged). The server that answers is
:mod:`qualification.server`; this module is below it so ``vqual selftest`` can judge proofs.

The last checkpoint seen per server is kept in ``<state>/log/seen.json``; it is replaced only
when the new one is proven consistent with it, so a log that was rewritten or cut stays
detected on every later check.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, EvidenceInvalidError, VqualError
from qualification.evidence.bundle import RECORDS, record_payload
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import RUN_END
from qualification.signing import TrustStore

SEEN_FILE = Path("log") / "seen.json"
#: The schema of a saved log proof.
PROOF_FORMAT = "vqual.log-proof/v1"
#: The name ``vqual pull`` saves a run's log proof under, beside the run's directory.
PROOF_SUFFIX = ".log.json"


#: The payload type of a signed checkpoint (a DSSE envelope, role ``log``).
CHECKPOINT_TYPE = "application/vnd.vqual.log-checkpoint+json"
#: The payload type of a signed void of a pushed run (role approver or trust-admin).
VOID_TYPE = "application/vnd.vqual.void+json"


def leaf_hash(leaf: bytes) -> str:
    return hashlib.sha256(b"\x00" + leaf).hexdigest()


def seal_leaf(change_id: str, run_id: str, seal: str) -> bytes:
    return canonical_bytes({"change_id": change_id, "kind": "seal", "run_id": run_id,
                            "seal": seal})


def after_seal_leaf(run_id: str, seal: str, kind: str, line: bytes) -> bytes:
    """A record appended after the seal (a signature, a timestamp), by its line's digest."""
    return canonical_bytes({"kind": kind, "record": hashlib.sha256(line).hexdigest(),
                            "run_id": run_id, "seal": seal})


def void_leaf(run_id: str, seal: str, envelope: bytes) -> bytes:
    return canonical_bytes({"document": hashlib.sha256(envelope).hexdigest(), "kind": "void",
                            "run_id": run_id, "seal": seal})


@dataclass(frozen=True)
class SealedRun:
    """A sealed bundle's identity and the lines after its seal, read without verifying."""

    change_id: str
    run_id: str
    seal: str
    lines: list[bytes]  # every line of records.jsonl, without newlines
    end_index: int  # the run.end line's index in ``lines``

    def after(self) -> list[tuple[str, bytes]]:
        """(kind, line) of each record after the seal."""
        return [(str(record_payload(line).get("kind")), line)
                for line in self.lines[self.end_index + 1:]]

    def leaves(self) -> list[bytes]:
        """The seal's leaf, then one per record after the seal, in order."""
        out = [seal_leaf(self.change_id, self.run_id, self.seal)]
        out += [after_seal_leaf(self.run_id, self.seal, kind, line) for kind, line in self.after()]
        return out


def read_sealed(bundle: Path) -> SealedRun:
    """The run's ids, seal and lines.

    Raises:
        EvidenceInvalidError: no complete records file, or no ``run.end``.
    """
    try:
        content = (bundle / RECORDS).read_bytes()
    except OSError as exc:
        raise EvidenceInvalidError(f"cannot read {RECORDS}: {exc.strerror}",
                                   where=str(bundle)) from None
    if not content.endswith(b"\n"):
        raise EvidenceInvalidError(f"{RECORDS} does not end with a complete line",
                                   where=str(bundle))
    lines = content[:-1].split(b"\n")
    for i, line in enumerate(lines):
        try:
            rec = record_payload(line)
        except (ValueError, KeyError, TypeError):
            raise EvidenceInvalidError(f"{RECORDS} line {i + 1} does not parse",
                                       where=str(bundle)) from None
        if rec.get("kind") == RUN_END:
            return SealedRun(str(rec.get("change_id")), str(rec.get("run_id")),
                             hashlib.sha256(line).hexdigest(), lines, i)
    raise EvidenceInvalidError("the run is not sealed (no run.end)", where=str(bundle))


def bundle_leaves(bundle: Path) -> list[bytes]:
    return read_sealed(bundle).leaves()


@dataclass
class LogCheck:
    size: int = 0
    root: str = ""
    included: list[tuple[str, int]] = field(default_factory=list)  # (what, index)
    problems: list[str] = field(default_factory=list)
    consistent_from: int | None = None
    notes: list[str] = field(default_factory=list)  # first contact, what offline cannot prove

    def lines(self, name: str) -> list[str]:
        status = "INVALID" if self.problems else "VALID"
        out = [f"{name}: log {status} at checkpoint size {self.size} root {self.root[:16]}"]
        out += [f"  {what}: included at log index {index}" for what, index in self.included]
        if self.consistent_from is not None:
            out.append(f"  consistent with the checkpoint of size {self.consistent_from} seen "
                       "before")
        out += [f"  {note}" for note in self.notes]
        out += [f"  {problem}" for problem in self.problems]
        return out


def seen(state_dir: Path) -> dict[str, Any]:
    """The last checkpoint seen per server URL."""
    try:
        data = json.loads((state_dir / SEEN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _save_seen(state_dir: Path, url: str, checkpoint: dict[str, Any]) -> None:
    known = seen(state_dir)
    known[url] = {k: checkpoint[k] for k in ("size", "root", "time")}
    path = state_dir / SEEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_proof(path: Path) -> dict[str, Any]:
    """A saved log proof.

    Raises:
        BadInputError: unreadable, not JSON, or not a log proof.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"log proof {path} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise BadInputError(f"log proof {path} is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != PROOF_FORMAT:
        raise BadInputError(f"{path} is not a log proof ({PROOF_FORMAT})")
    return data


def save_proof(proof: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(proof, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_proof(proof: dict[str, Any], bundle: Path, state_dir: Path, trust: TrustStore, *,
                offline: bool = False) -> LogCheck:
    """Check a log proof (fetched now or saved by ``vqual pull``) for ``bundle``: the
    checkpoint's signature (role ``log`` in ``trust``), the inclusion of every leaf the bundle has, and consistency with the checkpoint this
    state directory saw of the same server. Records the checkpoint as seen when it holds.

    ``offline`` (a saved proof): a checkpoint seen here that the saved proof cannot be proven
    consistent with (newer, or no proof from it) is a note, not a failure; online it fails.
    """
    from qualification.evidence.verify import open_signed_document

    out = LogCheck()
    try:
        envelope = canonical_bytes(proof["checkpoint"])  # as signed: canonical JSON
        cp = open_signed_document(envelope, CHECKPOINT_TYPE, trust, "log",
                                  where="log checkpoint").payload
        out.size, out.root = int(cp["size"]), str(cp["root"])
    except (VqualError, KeyError, TypeError, ValueError) as exc:
        out.problems.append(f"bad checkpoint signature: {_why(exc)}")
        return out
    server = str(proof.get("server", ""))
    previous = seen(state_dir).get(server)
    if previous is None:
        out.notes.append(f"first contact with the log at {server}: this checkpoint is "
                         "recorded; later checks prove the log consistent with it")
    else:
        _check_consistency(proof, previous, out, offline)
    _check_inclusions(proof, bundle, out)
    if not any(p.startswith("log inconsistent") for p in out.problems):
        _save_seen(state_dir, server, cp)
    return out


def _check_consistency(proof: dict[str, Any], previous: dict[str, Any], out: LogCheck,
                       offline: bool) -> None:
    from pymerkle import ConsistencyProof, InvalidProof, verify_consistency

    old_size, old_root = int(previous["size"]), str(previous["root"])
    seen_at = f"the checkpoint of size {old_size} seen at {previous.get('time')}"
    if old_size > out.size:
        if offline:  # an older saved proof; the newer checkpoint seen stands
            out.notes.append(f"not proven consistent with {seen_at}: the saved checkpoint is "
                             "older; check online (--log URL) for that")
            return
        out.problems.append(f"log inconsistent: it has {out.size} entries, fewer than {seen_at}")
        return
    if old_size == out.size:
        if old_root != out.root:
            out.problems.append(f"log inconsistent: its root differs from {seen_at}")
        else:
            out.consistent_from = old_size
        return
    step = next((s for s in proof.get("consistency", []) if s.get("first") == old_size
                 and s.get("second") == out.size), None)
    if step is None and offline:
        out.notes.append(f"not proven consistent with {seen_at}: the saved proof holds no "
                         "consistency proof from it; check online (--log URL) for that")
        return
    try:
        if step is None:
            raise ValueError("the server gave no consistency proof")
        if "error" in step:
            raise ValueError(step["error"])
        verify_consistency(bytes.fromhex(old_root), bytes.fromhex(out.root),
                           ConsistencyProof.deserialize(step["proof"]),
                           prior_size=old_size, later_size=out.size)
    except (InvalidProof, KeyError, ValueError, TypeError) as exc:
        out.problems.append(f"log inconsistent since {seen_at}: {_why(exc)}")
        return
    out.consistent_from = old_size


def _check_inclusions(proof: dict[str, Any], bundle: Path, out: LogCheck) -> None:
    from pymerkle import InclusionProof, InvalidProof, verify_inclusion

    sealed = read_sealed(bundle)
    held = {e.get("leaf_hash"): e for e in proof.get("inclusion", []) if isinstance(e, dict)}
    what = ["seal"] + [kind for kind, _ in sealed.after()]
    for name, leaf in zip(what, sealed.leaves(), strict=True):
        digest = leaf_hash(leaf)
        entry = held.get(digest)
        try:
            if entry is None:
                raise ValueError("the log proof holds no proof for it")
            if "error" in entry:
                raise ValueError(entry["error"])
            verify_inclusion(bytes.fromhex(digest), bytes.fromhex(out.root),
                             InclusionProof.deserialize(entry["proof"]),
                             index=int(entry["index"]), size=out.size)
        except (InvalidProof, KeyError, ValueError, TypeError) as exc:
            out.problems.append(f"{name} {digest[:16]} not included in the log: {_why(exc)}")
            continue
        out.included.append((name, int(entry["index"])))


def _why(exc: BaseException) -> str:
    if isinstance(exc, VqualError):
        return exc.one_line()
    if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], str):
        return " ".join(exc.args[0].split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())
