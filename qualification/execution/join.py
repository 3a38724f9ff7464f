"""``vqual join``: the run that cites every slice of a sliced job (docs/aap.md, "Job slicing").

A job sliced K ways writes K bundles of one change that share a ``slice`` parent
(:mod:`qualification.execution.slicing`). The join verifies the change, finds the sealed runs
of that parent, refuses when one is missing or not sealed, and writes a sealed run of mode
``join`` whose ``run.start`` carries ``joins: [{run, seal, slice, verdict}]``. It plans and
runs no test, so its own ``run.end`` counts nothing and its verdict is ``pass`` (the worst of
no result, as for every run; ``vqual verify`` recounts it so); what the sliced job found is
the worst of the siblings' verdicts, which the join records per sibling and its summary and
exit code give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.errors import (
    BadInputError,
    EvidenceIncompleteError,
    exit_code_for_verdict,
)
from qualification.evidence.change import is_change_dir, run_start_of
from qualification.evidence.result import INCOMPLETE, VerificationResult
from qualification.execution.citing import open_verified_change, seal_citing_run
from qualification.execution.slicing import slice_block
from qualification.spec.change import validate_run_id
from qualification.timeutil import new_run_id, utc_now
from qualification.verdict import overall

__all__ = ["JoinRequest", "JoinSummary", "run_join"]

SCHEMA = "vqual.join/v1"


@dataclass
class JoinRequest:
    change_dir: Path
    parent: str
    key_file: Path
    passphrase_reader: Callable[[], bytes]
    state_dir: Path
    initiator: str
    expect: int | None = None
    run_id: str | None = None


@dataclass
class JoinSummary:
    change_id: str
    run_id: str
    bundle: Path
    seal: str
    parent: str
    joins: list[dict[str, Any]]
    #: the sliced job's verdict: the worst of the siblings'
    verdict: str

    @property
    def exit_code(self) -> int:
        return exit_code_for_verdict(self.verdict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "change_id": self.change_id, "run_id": self.run_id,
            "bundle": str(self.bundle), "seal": self.seal, "parent": self.parent,
            "joins": self.joins, "verdict": self.verdict, "exit_code": self.exit_code,
        }

    def to_text(self) -> str:
        lines = [
            (f"vqual: {self.change_id} join {self.run_id} of slice parent {self.parent}: "
             f"{len(self.joins)} slices, {self.verdict.upper()} (the worst of theirs)"),
            f"  evidence: {self.bundle}",
            f"  seal:     {self.seal}",
        ]
        for j in self.joins:
            s = j["slice"]
            which = f"{s['index']}/{s['count']}" if s["index"] is not None else f"job {s['job']}"
            lines.append(f"  slice {which}: run {j['run']} {j['verdict']} (seal {j['seal'][:16]})")
        return "\n".join(lines)


def _siblings(runs: Sequence[VerificationResult], parent: str) -> list[dict[str, Any]]:
    """``joins`` entries of the sealed runs of ``parent``, in slice order.

    Raises:
        EvidenceIncompleteError: a run of ``parent`` is not sealed.
    """
    found: list[dict[str, Any]] = []
    for run in runs:
        block = run_start_of(run).get("slice")
        if not isinstance(block, dict) or block.get("parent") != parent:
            continue
        if run.status == INCOMPLETE or not run.seal_digest:
            raise EvidenceIncompleteError(
                f"run {run.path.name} (slice parent {parent}) is not sealed: it did not finish"
            )
        entry: dict[str, Any] = {"run": run.path.name, "seal": run.seal_digest,
                                 "slice": dict(block), "verdict": run.verdict}
        found.append(entry)
    found.sort(key=lambda j: (j["slice"]["index"] or 0, j["run"]))
    return found


def _check_complete(joins: Sequence[Mapping[str, Any]], parent: str, expect: int | None) -> None:
    """Refuse a join with a slice missing: fewer than the slices' count, or than ``expect``.

    Raises:
        EvidenceIncompleteError: naming the missing slice indexes, or how many are missing.
    """
    if not joins:
        raise EvidenceIncompleteError(f"no sealed run of slice parent {parent} here")
    counts = {j["slice"]["count"] for j in joins} - {None}
    count = counts.pop() if len(counts) == 1 else None
    if expect is not None and count is not None and expect != count:
        raise BadInputError(f"--expect {expect}: the slices of {parent} say they are {count}")
    want = expect if expect is not None else count
    if want is None:
        return
    have = {j["slice"]["index"] for j in joins} - {None}
    missing = sorted(set(range(1, want + 1)) - have) if have else []
    if missing:
        raise EvidenceIncompleteError(
            f"slice parent {parent}: slice {', '.join(map(str, missing))} of {want} has no "
            "sealed run here"
        )
    if len(joins) < want:
        raise EvidenceIncompleteError(
            f"slice parent {parent}: {len(joins)} of {want} slices have a sealed run here"
        )


def run_join(request: JoinRequest) -> JoinSummary:
    """Verify the change, check every slice of ``request.parent`` is sealed, write the join.

    Raises:
        BadInputError: a bad parent, ``--expect`` or path; nothing written.
        EvidenceInvalidError: the change does not verify.
        EvidenceIncompleteError: a slice is missing or did not finish.
    """
    parent = str(slice_block(None, None, None, request.parent)["parent"])
    if request.expect is not None and request.expect < 1:
        raise BadInputError(f"--expect {request.expect}: give the number of slices, at least 1")
    change_dir = Path(request.change_dir)
    if not is_change_dir(change_dir):
        raise BadInputError(f"{change_dir} is not a change directory (evidence/<change id>)")
    run_id = validate_run_id(request.run_id) if request.run_id else new_run_id(utc_now())
    change = open_verified_change(change_dir, request.state_dir, request.key_file,
                                  request.passphrase_reader, "the change does not verify")
    joins = _siblings(change.runs, parent)
    _check_complete(joins, parent, request.expect)
    bundle, seal = seal_citing_run(change, run_id=run_id, state_dir=request.state_dir,
                                   initiator=request.initiator, mode="join",
                                   cited={"joins": joins})
    return JoinSummary(
        change_id=change_dir.name, run_id=run_id, bundle=bundle, seal=seal, parent=parent,
        joins=joins, verdict=overall({str(j["verdict"]): 1 for j in joins}).value,
    )
