"""ST-OQ-34 (VQ-85): a migration summary cites its conversion by seal and verifies with its
change; a summary over a conversion bundle that does not verify is refused. The check fails
when the summary would be written over a change that does not verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.evidence.change import ChangeResult
from qualification.execution import citing as citing_module
from qualification.selftest import migration
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks


def test_st_oq_34_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-34"]
    assert check.requirement == "VQ-85"
    outcome = check.run()
    assert outcome.ok, outcome.observed
    assert outcome.observed == migration.WANT


def test_st_oq_34_fails_when_a_summary_ignores_the_change_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = citing_module.verify_change

    def lenient(path: Path, trust: object) -> ChangeResult:
        res = real(path, trust)  # type: ignore[arg-type]
        res.status, res.problems = "valid", []
        return res

    monkeypatch.setattr(citing_module, "verify_change", lenient)
    outcome = migration._summary_refused(lambda: Scratch(tmp_path))
    assert not outcome.ok
    assert outcome.observed["conversion_edited"].startswith("a summary was accepted")
