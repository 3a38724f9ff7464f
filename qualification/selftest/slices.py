"""OQ self check of job slicing (VQ-49): two sealed slices of one parent and the join that
cites them verify as a change, the slices anchored by the join; a slice deleted after the
join makes the change invalid, naming the join."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.change import NOT_ANCHORED, verify_change
from qualification.evidence.kinds import RUN_START
from qualification.execution.recorder import add_renderings
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch

CHANGE = "SELFTEST-SLICES"
WANT = {"joined": "valid, only the join unanchored", "slice_deleted": "invalid, naming the join"}


def _run(s: Scratch, root: Path, run_id: str, extra: dict[str, Any]) -> BundleWriter:
    w = BundleWriter.create(root, CHANGE, run_id, s.signer, "selftest")
    w.append(RUN_START, {"mode": "selftest", "planned": [], **extra})
    add_renderings(w)
    w.seal({}, 0, 0, "pass")
    return w


def _joined(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    root = s.root / "slices"
    joins: list[dict[str, Any]] = []
    for index in (1, 2):
        # Side by side on two machines: each cites no earlier run; only the join cites both.
        block = {"index": index, "count": 2, "job": f"job-{index}", "parent": "selftest"}
        w = _run(s, root, f"20000101T000000Z-slice{index}",
                 {"slice": block, "prev_run_seal": None})
        joins.append({"run": w.path.name, "seal": w.seal_digest, "slice": block,
                      "verdict": "pass"})
    join = _run(s, root, "20000101T000001Z-join00", {
        "mode": "join", "joins": joins, "prev_run_seal": latest_seal(root, CHANGE)}).path.name
    res = verify_change(root / CHANGE, s.trust, workers=1)
    unanchored = [w for w in res.warnings if w.startswith(NOT_ANCHORED)]
    joined = ("valid, only the join unanchored"
              if res.status == "valid" and len(unanchored) == 1 and join in unanchored[0]
              else f"{res.status}: {(res.problems or unanchored)[:2]}")
    shutil.rmtree(root / CHANGE / joins[0]["run"])
    res = verify_change(root / CHANGE, s.trust, workers=1)
    deleted = ("invalid, naming the join"
               if res.status == "invalid" and any(p.startswith(f"run {join}:") for p in res.problems)
               else f"{res.status}: {res.problems[:2]}")
    got = {"joined": joined, "slice_deleted": deleted}
    return Outcome(got == WANT, got)


def slice_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: sliced runs and their join verify as a change; a slice removed is detected."""
    return [
        SelfCheck(
            "ST-OQ-24",
            "two slices of one job and the join citing them verify as a change, the slices "
            "anchored by the join; a slice deleted after the join is refused naming the join",
            "OQ",
            "VQ-49",
            "two sealed scratch runs with slice blocks of one parent and a join run citing "
            "their seals, verified as a change; then one slice deleted and verified again",
            {"op": "equals", "value": WANT},
            lambda: _joined(scratch),
        )
    ]
