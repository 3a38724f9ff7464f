"""OQ self check that a run holds only the tests it planned (VQ-93): a scratch run whose
executor wrote, besides its one planned test, a result for a test ``run.start`` did not
plan (counted in ``run.end`` and rendered in the sealed JUnit and report like the others,
so only the plan tells) is refused, naming the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qualification.evidence.kinds import CHECK_RESULT, RUN_START
from qualification.execution.recorder import add_renderings
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch

UNPLANNED = "T-UNPLANNED"
WANT = {"honest": "valid", "unplanned": "invalid", "named": True}


def _run(s: Scratch, *, extra: bool) -> Path:
    """A sealed run planning T-1 on t; ``extra``: also a result for :data:`UNPLANNED`."""
    w = s.writer()
    w.append(RUN_START, {"mode": "selftest", "prev_run_seal": None,
                         "planned": [{"test_id": "T-1", "target": "t", "protocol": "IQ"}]})
    tests = ("T-1", UNPLANNED) if extra else ("T-1",)
    for test in tests:
        w.append(CHECK_RESULT, {"test_id": test, "title": f"selftest {test}", "target": "t",
                                "protocol": "IQ", "verdict": "pass", "reason": None,
                                "raw": None})
    add_renderings(w)
    w.seal({"pass": len(tests)}, 1, len(tests), "pass")
    return w.path


def unplanned_refused(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    honest_status = s.status(_run(s, extra=False))
    res = s.verify(_run(s, extra=True))
    named = any(UNPLANNED in p and "did not plan" in p for p in res.problems)
    got = {"honest": honest_status, "unplanned": res.status, "named": named}
    return Outcome(got == WANT, got, None if got == WANT else "; ".join(res.problems[:3]))


def unplanned_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: verify refuses a check.result its run.start did not plan."""
    return [
        SelfCheck(
            "ST-OQ-37",
            "a bundle with a check.result for a test its run.start did not plan is refused, "
            "naming the test",
            "OQ",
            "VQ-93",
            "a scratch run planning one test verified; then one that also records, counts "
            "and renders a result for a test it did not plan; verified again",
            {"op": "equals", "value": WANT},
            lambda: unplanned_refused(scratch),
        )
    ]
