"""ST-OQ-30 (VQ-71) and ST-OQ-31 (VQ-73): conversion by difference and the decommissioning
refusal, as `vqual selftest` checks them."""

from __future__ import annotations

from typing import Any

import pytest

from qualification.selftest import conversion as conversion_check
from qualification.selftest import self_checks


def _check(test_id: str) -> Any:
    (check,) = [c for c in self_checks(None, lambda: None) if c.test_id == test_id]  # type: ignore[arg-type,return-value]
    return check


def test_st_oq_30_and_31_pass_on_the_real_rules() -> None:
    check = _check("ST-OQ-30")
    assert check.requirement == "VQ-71"
    outcome = check.run()
    assert outcome.ok, outcome
    assert outcome.observed[0][:3] == ["data", "/srv/app/orders.dat", False]
    check = _check("ST-OQ-31")
    assert check.requirement == "VQ-73"
    outcome = check.run()
    assert outcome.ok, outcome


def test_st_oq_30_fails_when_a_rule_would_let_data_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    # a comparison that stops judging data must be caught: here the data part is dropped
    real = conversion_check.judge
    monkeypatch.setattr(conversion_check, "judge",
                        lambda s, t, r: [j for j in real(s, t, r) if j.difference.what != "data"])
    outcome = _check("ST-OQ-30").run()
    assert not outcome.ok


def test_st_oq_31_fails_when_the_dependent_is_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversion_check, "decommission_block", lambda *a, **k: {})
    outcome = _check("ST-OQ-31").run()
    assert not outcome.ok and outcome.observed == "not refused"
