"""OQ self checks of the check library and the run rules: the check operators decide fixed
cases (VQ-07), every verdict exits with its documented code (VQ-19), and a high-risk change
loads only with an OQ canary or a waiver with its reason (VQ-20)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualification.checks import operators
from qualification.errors import BadInputError, exit_code_for_verdict
from qualification.rollout.change import load_change
from qualification.selftest.base import Outcome, SelfCheck

#: (observed, expectation, whether it must hold) decided by the check library.
_OPERATOR_CASES: list[tuple[Any, dict[str, Any], bool]] = [
    ("yes", {"op": "equals", "value": "yes"}, True),
    ("no", {"op": "equals", "value": "yes"}, False),
    ("4096", {"op": "range", "min": 1024, "max": 8192}, True),
    (16384, {"op": "range", "min": 1024, "max": 8192}, False),
    ("8.0.2-1", {"op": "version", "cmp": ">=", "value": "8.0.1-3", "scheme": "debian"}, True),
    ("1.10", {"op": "version", "cmp": "<", "value": "1.9", "scheme": "pep440"}, False),
    (
        "PermitRootLogin no",
        {"op": "regex", "value": "PermitRootLogin (no|prohibit-password)"},
        True,
    ),
    ([], {"op": "absent"}, True),
]


def operators_check() -> Outcome:
    wrong = []
    for observed, expect, want in _OPERATOR_CASES:
        ok, _ = operators.apply(observed, expect)
        if ok != want:
            wrong.append(f"{observed!r} {expect}: {ok}")
    return Outcome(not wrong, len(_OPERATOR_CASES) - len(wrong), "; ".join(wrong) or None)


#: docs/formats.md, "Verdicts and exit codes": what a finished run of each verdict returns.
_DOCUMENTED_EXITS = {"pass": 0, "waived": 0, "fail": 1, "not-executed": 3, "error": 4}


def verdict_exits() -> Outcome:
    got = {verdict: exit_code_for_verdict(verdict) for verdict in _DOCUMENTED_EXITS}
    return Outcome(got == _DOCUMENTED_EXITS, got)


_HIGH_RISK_CHANGE = """\
apiVersion: vqual.change/v1
change_id: CHG0000042
title: selftest change
risk: high
cluster: selftest
target:
  packages:
    selftest-package: "1.1"
window:
  start: "2026-11-26T20:00:00Z"
  end: "2026-11-27T02:00:00Z"
"""


def canary_rule(root: Path) -> Outcome:
    """No canary: refused; a canary: loads; a waiver: loads and keeps its reason."""
    spec = root / "canary-spec.yaml"
    spec.write_text("apiVersion: vqual/v1\n")
    cases = {
        "none": _HIGH_RISK_CHANGE,
        "canary": _HIGH_RISK_CHANGE + f"requalify:\n  spec: {spec}\n  canary_vm: vm1\n",
        "waiver": _HIGH_RISK_CHANGE + "canary_waiver:\n  reason: selftest reason\n",
    }
    got = []
    for name, text in cases.items():
        path = root / f"change-{name}.yaml"
        path.write_text(text)
        try:
            change = load_change(path)
        except BadInputError:
            got.append("refused")
            continue
        waiver = change.canary_waiver
        got.append("loaded with reason" if waiver and waiver.reason == "selftest reason"
                   else "loaded")
    want = ["refused", "loaded", "loaded with reason"]
    return Outcome(got == want, got)


def library_checks(scratch_root: Callable[[], Path]) -> list[SelfCheck]:
    """OQ: the check operators, the verdict exit codes and the OQ canary rule."""
    return [
        SelfCheck(
            "ST-OQ-07",
            "check operators decide fixed cases",
            "OQ",
            "VQ-07",
            "qualification.checks.operators.apply",
            {"op": "equals", "value": len(_OPERATOR_CASES)},
            operators_check,
        ),
        SelfCheck(
            "ST-OQ-08",
            "every verdict exits with its documented code; only pass and waived exit 0",
            "OQ",
            "VQ-19",
            "qualification.errors.exit_code_for_verdict",
            {"op": "equals", "value": _DOCUMENTED_EXITS},
            verdict_exits,
        ),
        SelfCheck(
            "ST-OQ-09",
            "a high-risk change loads only with an OQ canary or a waiver with its reason",
            "OQ",
            "VQ-20",
            "qualification.rollout.change.load_change",
            {"op": "equals", "value": ["refused", "loaded", "loaded with reason"]},
            lambda: canary_rule(scratch_root()),
        ),
    ]
