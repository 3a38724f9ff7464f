"""Exit codes by verdict: one table for every command that seals a bundle."""

from __future__ import annotations

from qualification.errors import (
    EXIT_BAD_INPUT,
    EXIT_BY_VERDICT,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_PLATFORM,
    exit_code_for_verdict,
)
from qualification.evidence.records import VERDICTS


def test_every_verdict_has_its_exit_code_and_only_pass_is_success() -> None:
    assert set(EXIT_BY_VERDICT) == set(VERDICTS)
    assert {v: exit_code_for_verdict(v) for v in VERDICTS} == {
        "pass": EXIT_OK,
        "waived": EXIT_OK,  # a fail covered by an approved deviation counts as passed
        "fail": EXIT_FAILED,
        "error": EXIT_PLATFORM,
        "not-executed": EXIT_INCOMPLETE,  # planned tests without a result: never 0
    }
    assert EXIT_BAD_INPUT not in EXIT_BY_VERDICT.values()  # 2: nothing was executed
    assert exit_code_for_verdict("incomplete") == EXIT_FAILED  # unknown: never success
