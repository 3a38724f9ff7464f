"""ST-OQ-16 and ST-OQ-17 (VQ-35, VQ-36): the selftest's checks of the pinned trust root hold
here, and fail when the verifier stops judging by the pin or by time."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.review import trust_history
from qualification.selftest import trust_root
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks
from qualification.signing.trust_root import TrustTimeline


def test_st_oq_16_and_17_are_checks_and_hold(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    checks = [c for c in self_checks(None, lambda: scratch)
              if c.test_id in ("ST-OQ-16", "ST-OQ-17")]
    assert [(c.test_id, c.requirement) for c in checks] == [
        ("ST-OQ-16", "VQ-35"), ("ST-OQ-17", "VQ-36")]
    for check in checks:
        outcome = check.run()
        assert outcome.ok, (check.test_id, outcome.observed)


def test_st_oq_16_fails_when_the_pin_is_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trust_history, "check_versions_rooted", lambda *a: None)
    outcome = trust_root.attack_refused(tmp_path)
    assert not outcome.ok and outcome.observed["rebuilt_store"] == "valid"


def test_st_oq_17_fails_when_keys_are_not_judged_by_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every record judged by the latest version, as before pinning.
    monkeypatch.setattr(TrustTimeline, "in_force", lambda self, when: (
        self.versions[-1][1], self.versions[-1][2]))
    outcome = trust_root.time_indexed(tmp_path)
    assert not outcome.ok and outcome.observed["late_key"] == "valid"
