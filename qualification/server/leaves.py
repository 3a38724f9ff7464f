"""What the transparency log holds: one leaf per accepted seal, signature and void.

A leaf is canonical JSON (RFC 8785) naming the run and what was accepted; its hash is RFC
6962's leaf hash, SHA-256 of ``0x00 || leaf``. A client recomputes the leaves of a bundle it
holds (:func:`bundle_leaves`) and asks the log to prove their inclusion.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from qualification.errors import EvidenceInvalidError
from qualification.evidence.bundle import RECORDS, record_payload
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import RUN_END

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
