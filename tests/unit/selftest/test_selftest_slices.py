"""ST-OQ-24 (VQ-49): slices and their join verify as a change; the check fails when change
verification does not count a join's seals as cited."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.evidence import change as change_module
from qualification.selftest import slices
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks


def test_st_oq_24_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-24"]
    assert check.requirement == "VQ-49"
    outcome = check.run()
    assert outcome.ok, outcome.observed
    assert outcome.observed == slices.WANT


def test_st_oq_24_fails_when_a_join_anchors_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(change_module, "_joined", lambda starts: set())
    scratch = Scratch(tmp_path)
    outcome = slices._joined(lambda: scratch)
    assert not outcome.ok
    assert outcome.observed["joined"].startswith("valid: ['latest run not anchored")
