"""ST-OQ-33 (VQ-82): a deviation's raiser cannot approve it in the browser; the check fails
when the separation of duties it names does not hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.selftest import deviations
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks
from qualification.server.web import deviation_pages


def test_st_oq_33_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-33"]
    assert check.requirement == "VQ-82" and check.not_executed is None
    outcome = check.run()
    assert outcome.ok, outcome.observed
    assert outcome.observed == deviations.WANT


def test_st_oq_33_fails_when_the_raiser_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deviation_pages, "approval_refusal", lambda *args: None)
    outcome = deviations.raiser_may_not_approve(tmp_path)
    assert not outcome.ok
    # Without the browser's own check, the raiser's key (not in the trust store) still
    # signs nothing: no waiver is held, but the reason is another one.
    assert outcome.observed["raiser_approves"] != "refused: raised or owns"
    assert outcome.observed["waivers_held"] == 0
