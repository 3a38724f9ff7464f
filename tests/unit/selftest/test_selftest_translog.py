"""ST-OQ-25 (VQ-61): a log proof that matches proves a run's seal included, one that does not
is refused; the check fails when the log-proof check stops verifying inclusion proofs."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.evidence import logproof
from qualification.selftest import translog
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks


def test_st_oq_25_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-25"]
    assert (check.requirement, check.not_executed) == ("VQ-61", None)
    outcome = check.run()
    assert outcome.ok, outcome.observed
    assert outcome.observed == translog.WANT


def test_st_oq_25_fails_when_inclusion_proofs_are_not_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pymerkle

    # A check that took the server's index for granted would accept any path.
    monkeypatch.setattr(pymerkle, "verify_inclusion", lambda *_a, **_k: None)
    scratch = Scratch(tmp_path)
    outcome = translog._judged(lambda: scratch)
    assert not outcome.ok
    assert outcome.observed == {"matching": "included", "not_matching": "included"}
    assert logproof.PROOF_FORMAT == "vqual.log-proof/v1"
