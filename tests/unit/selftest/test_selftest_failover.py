"""ST-OQ-36 (VQ-88): a failover record whose marker does not match fails, from the shipped
fixture, whatever verdict the probe wrote into it; the check notices when the judging is gone."""

from __future__ import annotations

import pytest

from qualification.checks import failover, libvirt
from qualification.selftest import self_checks
from qualification.selftest.base import SelfCheck
from qualification.selftest.failover import _fixture


def _check() -> SelfCheck:
    (check,) = [c for c in self_checks(None, lambda: None)  # type: ignore[arg-type,return-value]
                if c.test_id == "ST-OQ-36"]
    return check


def test_st_oq_36_passes_on_the_real_check() -> None:
    check = _check()
    assert check.requirement == "VQ-88" and check.protocol == "OQ"
    outcome = check.run()
    assert outcome.ok, outcome
    assert outcome.observed == ["fail", "pass"]


def test_the_fixture_claims_a_pass_with_a_marker_that_differs() -> None:
    value = _fixture()
    assert value["verdict"] == "pass"
    assert value["marker_read"] != value["marker_written"]
    assert failover.judge(value)[0] == "fail"


def test_st_oq_36_fails_when_the_check_trusts_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    # A check that takes the probe's verdict as it is: the mismatch would pass unseen.
    monkeypatch.setattr(libvirt, "judge_failover",
                        lambda value: (value["verdict"], value.get("reason")))
    outcome = _check().run()
    assert not outcome.ok
    assert outcome.observed == ["pass", "pass"]
