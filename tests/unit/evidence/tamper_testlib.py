"""Tampering as an insider would: rewrite a run's records and sign them again with a key the
trust store holds (the executor's own), rebuilding the hash chain so every signature and
``prev`` verifies. What is left to catch the rewrite is what the records must agree with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.records import ZERO_DIGEST
from qualification.signing.dsse import parse_envelope, sign_envelope
from qualification.signing.keys import Ed25519Signer

#: Takes a decoded record, returns it changed, or None to drop it.
Edit = Callable[[dict[str, Any]], dict[str, Any] | None]


def records(bundle: Path) -> list[dict[str, Any]]:
    lines = (bundle / "records.jsonl").read_bytes().splitlines()
    return [json.loads(parse_envelope(line).payload) for line in lines]


def lines_of(bundle: Path) -> list[bytes]:
    return (bundle / "records.jsonl").read_bytes().split(b"\n")[:-1]


def write_lines(bundle: Path, lines: list[bytes]) -> None:
    (bundle / "records.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))


def rewrite(
    bundle: Path,
    signer: Ed25519Signer,
    edit: Edit,
    *,
    signer_at: dict[int, Ed25519Signer] | None = None,
) -> None:
    """Apply ``edit`` to every record, re-sign all with ``signer``, rebuild seq and prev.

    Signature records (signed by others, over the old seal) are dropped: the insider cannot
    sign as the reviewer. ``signer_at`` signs the records at those new seqs with other keys."""
    kept = [edit(rec) for rec in records(bundle) if rec["kind"] != "signature"]
    sign_records(bundle, signer, [r for r in kept if r is not None], signer_at=signer_at)


def sign_records(
    bundle: Path,
    signer: Ed25519Signer,
    recs: list[dict[str, Any]],
    *,
    signer_at: dict[int, Ed25519Signer] | None = None,
) -> None:
    """Write ``recs`` as the run's records, each signed, seq and prev rebuilt."""
    out: list[bytes] = []
    prev = ZERO_DIGEST
    for changed in recs:
        key = (signer_at or {}).get(len(out), signer)
        changed.update(seq=len(out), prev=prev, actor=key.keyid)
        line = sign_envelope(canonical_bytes(changed), key).to_bytes()
        out.append(line)
        prev = hashlib.sha256(line).hexdigest()
    (bundle / "records.jsonl").write_bytes(b"".join(line + b"\n" for line in out))


def flip(test_id: str, target: str, to: str = "pass") -> Edit:
    """Turn the result of ``test_id`` on ``target`` into ``to`` (reason cleared)."""

    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        data = rec["data"]
        if rec["kind"] == "check.result" and (data["test_id"], data["target"]) == (
            test_id,
            target,
        ):
            data["verdict"], data["reason"] = to, None
        return rec

    return edit


def cut_run_end(bundle: Path) -> None:
    """Remove run.end and what follows it: a sealed run passed off as a crashed one."""
    lines = (bundle / "records.jsonl").read_bytes().splitlines()
    kinds = [json.loads(parse_envelope(line).payload)["kind"] for line in lines]
    keep = lines[: kinds.index("run.end")]
    (bundle / "records.jsonl").write_bytes(b"".join(line + b"\n" for line in keep))
