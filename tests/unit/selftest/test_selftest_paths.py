"""ST-OQ-35 (VQ-76): a degraded bond, from real /proc/net/bonding text, fails the bond check
naming the member, as `vqual selftest` checks it; the check fails when the parser or the
check stops seeing the member's link."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.selftest import paths as selftest_paths
from qualification.selftest import self_checks
from qualification.selftest.base import SelfCheck

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "paths"


def _check() -> SelfCheck:
    (check,) = [c for c in self_checks(None, lambda: None)  # type: ignore[arg-type,return-value]
                if c.test_id == "ST-OQ-35"]
    return check


def test_st_oq_35_fails_the_degraded_bond_naming_the_member() -> None:
    check = _check()
    assert check.requirement == "VQ-76" and check.protocol == "OQ" and not check.not_executed
    outcome = check.run()
    assert outcome.ok, outcome
    assert outcome.observed["observed"] == ["bond0/eth2"]


def test_the_selftest_fixture_is_the_captured_guest_output() -> None:
    shipped = selftest_paths.FIXTURE.read_text()
    assert shipped == (FIXTURES / "bond0-degraded.txt").read_text()
    assert shipped.startswith("Ethernet Channel Bonding Driver: v6.1.0-")


def test_st_oq_35_notices_a_bond_that_reads_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    # the same check on the healthy capture: nothing is down, so the check must not hold
    monkeypatch.setattr(selftest_paths, "FIXTURE", FIXTURES / "bond0-healthy.txt")
    outcome = _check().run()
    assert not outcome.ok
    assert outcome.observed["verdict"] == "pass"
