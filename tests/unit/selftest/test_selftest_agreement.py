"""ST-OQ-15 (VQ-31): the selftest refuses a scratch run tampered with and re-signed by the
executor's own key, and fails when the verifier stops checking agreement."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.evidence import verify as verify_module
from qualification.selftest import agreement
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks


def test_st_oq_15_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-15"]
    assert check.requirement == "VQ-31"
    outcome = check.run()
    assert outcome.ok, outcome.reason
    assert outcome.observed == agreement.WANT


def test_st_oq_15_fails_when_verify_does_not_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_module, "_check_agreement", lambda *a: None)
    scratch = Scratch(tmp_path)
    outcome = agreement.resigned_refused(lambda: scratch)
    assert not outcome.ok
    assert outcome.observed["resigned"] == "valid"
