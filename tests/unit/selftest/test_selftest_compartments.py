"""ST-OQ-32 (VQ-75): the planner keeps an HA pair out of one fire compartment, as `vqual
selftest` checks it on generated data; the check fails when the rule is gone."""

from __future__ import annotations

import pytest

from qualification.rollout import planner
from qualification.selftest import self_checks
from qualification.selftest.base import SelfCheck


def _check() -> SelfCheck:
    (check,) = [c for c in self_checks(None, lambda: None)  # type: ignore[arg-type,return-value]
                if c.test_id == "ST-OQ-32"]
    return check


def test_st_oq_32_passes_on_the_real_planner() -> None:
    check = _check()
    assert check.requirement == "VQ-75" and check.protocol == "OQ"
    outcome = check.run()
    assert outcome.ok, outcome
    assert outcome.observed["room in its compartment"] == [True, "h2"]


def test_st_oq_32_fails_when_the_planner_ignores_compartments(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a planner whose compartment look-up is broken (every host reports one unknown
    # compartment): ha-a can no longer move to h2, and the check must notice
    monkeypatch.setattr(planner._Planner, "compartment", lambda self, host: "everywhere")
    outcome = _check().run()
    assert not outcome.ok
    assert outcome.observed["room in its compartment"] != [True, "h2"]
