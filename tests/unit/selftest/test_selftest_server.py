"""ST-OQ-26 (VQ-63): the evidence server's self check passes on the real server and fails when
the server takes what does not verify; `vqual selftest` runs it (or records it not executed,
naming the extra)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qualification.evidence.result import VerificationResult
from qualification.selftest.run import _run_check
from qualification.server import service
from qualification.selftest.server import WANT, refuses_a_tampered_push, unavailable_checks
from qualification.signing.trust_root import PIN_ENV


def test_the_server_check_passes_on_the_real_server(tmp_path: Path) -> None:
    pin_before = os.environ.get(PIN_ENV)
    outcome = refuses_a_tampered_push(tmp_path / "server")
    assert outcome.ok, outcome.observed
    assert outcome.observed == WANT
    assert os.environ.get(PIN_ENV) == pin_before  # the scratch pin is put back


def test_the_server_check_fails_when_the_server_stores_what_does_not_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def believes_everything(bundle: Path, trust: object,
                            workers: int | None = None) -> VerificationResult:
        return VerificationResult(bundle, "valid")  # a broken server: every bundle "verifies"

    monkeypatch.setattr(service, "verify_bundle", believes_everything)
    outcome = refuses_a_tampered_push(tmp_path / "server")
    assert not outcome.ok
    assert outcome.observed["tampered"] == 201


def test_without_the_extra_the_check_is_recorded_not_executed() -> None:
    (check,) = unavailable_checks("starlette")
    data = _run_check(check, "vqual@test")
    assert (data["test_id"], data["verdict"]) == ("ST-OQ-26", "not-executed")
    assert data["reason"] == ("the evidence server needs starlette, which is not installed: "
                              "pip install 'vqual[server]'")
