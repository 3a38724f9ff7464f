"""ST-OQ-27 (VQ-65, VQ-66): a login lockout held in the database and a refused signature by
an unsigned browser key; the check fails when the lockout does not hold."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from qualification.selftest import web
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks
from qualification.server.web import settings


def test_st_oq_27_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-27"]
    assert check.requirement == "VQ-65" and check.not_executed is None
    outcome = check.run()
    assert outcome.ok, outcome.observed
    assert outcome.observed == web.WANT


def test_st_oq_27_fails_when_failed_logins_lock_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = settings.WebSettings

    def no_lockout(**kwargs: int) -> settings.WebSettings:
        return replace(real(**kwargs), lockout_failures=1000)

    monkeypatch.setattr(settings, "WebSettings", no_lockout)
    scratch = Scratch(tmp_path)
    outcome = web._lockout_and_unsigned_key(lambda: scratch)
    assert not outcome.ok
    assert outcome.observed["right_password_after_failures"] == "accepted: "
