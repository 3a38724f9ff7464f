"""ST-OQ-21 (VQ-46): the inspector's exported keys verify records with securesystemslib alone,
and the check fails when the export puts a key under an id the envelopes do not carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qualification.review import inspector as inspector_module
from qualification.selftest import inspector
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks
from qualification.signing.trust import TrustStore


def test_st_oq_21_is_a_check_and_holds(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path)
    (check,) = [c for c in self_checks(None, lambda: scratch) if c.test_id == "ST-OQ-21"]
    assert check.requirement == "VQ-46"
    outcome = check.run()
    assert outcome.ok, outcome.observed
    assert outcome.observed == inspector.WANT


def test_st_oq_21_fails_when_keys_are_exported_under_their_default_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = inspector_module.securesystemslib_keys

    def by_default_id(trust: TrustStore) -> dict[str, Any]:
        out = real(trust)
        for key in out["keys"]:
            key["keyid"] = key["sslib_default_keyid"]
        return out

    monkeypatch.setattr(inspector, "securesystemslib_keys", by_default_id)
    scratch = Scratch(tmp_path)
    outcome = inspector._verified_by_exported_keys(lambda: scratch)
    assert not outcome.ok
    assert outcome.observed["honest_lines_verified"] != "all"
