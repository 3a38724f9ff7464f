"""OQ self check of the rolling patch's resume rule (VQ-26): a journal written with another
version of the step table, or with none, is refused in one line before anything is touched;
one of the same version is accepted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qualification.errors import BadInputError
from qualification.rollout.change import load_change
from qualification.rollout.journal import Journal, journal_path
from qualification.rollout.orchestrator import resumable
from qualification.rollout.steps import STEPS_VERSION
from qualification.selftest.base import Outcome, SelfCheck

_CHANGE = """\
apiVersion: vqual.change/v1
change_id: CHG0000043
title: selftest resume
risk: low
cluster: selftest
target:
  packages:
    selftest-package: "1.1"
window:
  start: "2026-11-26T20:00:00Z"
  end: "2026-11-27T02:00:00Z"
"""

#: journal -> the ``steps_version`` its ``run.begin`` records (None: the field is absent).
CASES: dict[str, int | None] = {
    "no steps version": None,
    "next steps version": STEPS_VERSION + 1,
    "same steps version": STEPS_VERSION,
}
WANT = {
    "no steps version": "refused",
    "next steps version": "refused",
    "same steps version": "accepted",
}


def _halted_journal(state: Path, run_id: str, change_id: str, digest: str,
                    steps_version: int | None) -> bytes:
    """A run halted in its first host's patch step, as the orchestrator journals it."""
    begin: dict[str, object] = {
        "run_id": run_id, "change_id": change_id, "change_digest": digest,
        "cluster": "selftest", "resumed_from": None, "order": [], "skipped": [],
        "bundle": None,
    }
    if steps_version is not None:
        begin.update(steps_version=steps_version, vqual_version="0.0.0-selftest")
    journal = Journal.create(state, run_id)
    try:
        journal.append("run.begin", **begin)
        journal.append("step.begin", run_id=run_id, host="h1", step="patch")
        journal.append("step.failed", run_id=run_id, host="h1", step="patch", error="selftest")
        journal.append("run.halted", run_id=run_id, reason="selftest")
    finally:
        journal.close()
    return journal_path(state, run_id).read_bytes()


def resume_rule(root: Path) -> Outcome:
    """Each case's journal through ``resumable``; a refusal must be one line saying the run
    cannot be resumed, with the journal's bytes unchanged."""
    state = root / "resume-state"
    change_file = root / "resume-change.yaml"
    change_file.write_text(_CHANGE)
    change = load_change(change_file)
    got: dict[str, str] = {}
    said: dict[str, str] = {}
    for number, (case, version) in enumerate(CASES.items(), start=1):
        run_id = f"20000101T00000{number}Z-5e1f7e"
        before = _halted_journal(state, run_id, change.change_id, change.digest, version)
        try:
            resumable(state, run_id, change)
            got[case] = "accepted"
        except BadInputError as exc:
            said[case] = exc.one_line()
            one_line = "\n" not in exc.message and "cannot be resumed" in said[case]
            got[case] = "refused" if one_line else "refused otherwise"
        if journal_path(state, run_id).read_bytes() != before:
            got[case] += ", journal changed"
    wrong = [
        f"{case}: {got[case]}" + (f" ({said[case]})" if case in said else "")
        for case in WANT
        if got.get(case) != WANT[case]
    ]
    return Outcome(not wrong, got, "; ".join(wrong) or None)


def resume_checks(scratch_root: Callable[[], Path]) -> list[SelfCheck]:
    """OQ: the steps-version rule of ``vqual patch --resume``."""
    return [
        SelfCheck(
            "ST-OQ-12",
            "a rolling patch resumes only a journal of the same steps version",
            "OQ",
            "VQ-26",
            "qualification.rollout.orchestrator.resumable on journals written with no steps "
            "version, the next one and this one",
            {"op": "equals", "value": WANT},
            lambda: resume_rule(scratch_root()),
        )
    ]
