"""ST-OQ-37 (VQ-93): the selftest refuses a scratch run holding a result for a test its
run.start did not plan, and fails when the verifier stops comparing results with the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.evidence.kinds import check_result
from qualification.selftest import unplanned
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks


def test_st_oq_37_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-37"]
    assert check.requirement == "VQ-93"
    outcome = check.run()
    assert outcome.ok, outcome.reason
    assert outcome.observed == unplanned.WANT


def test_st_oq_37_fails_when_verify_does_not_compare_with_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Everything(set[str]):
        def __contains__(self, item: object) -> bool:
            return True

    real = check_result.CheckResult.verify

    def lax(self, chain, where, record, digest, keyid):  # type: ignore[no-untyped-def]
        chain.planned_ids = Everything()
        return real(self, chain, where, record, digest, keyid)

    monkeypatch.setattr(check_result.CheckResult, "verify", lax)
    outcome = unplanned.unplanned_refused(lambda: Scratch(tmp_path / "s"))
    assert not outcome.ok
    assert outcome.observed == {"honest": "valid", "unplanned": "valid", "named": False}
