"""ST-OQ-18 (VQ-41) and ST-OQ-19 (VQ-44): format v2's trusted time and rules, checked at a site
from the golden bundles; each fails when what it guards is broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qualification.evidence import trusted_time as trusted_time_module
from qualification.selftest import trusted_time
from qualification.selftest.base import repo_golden_dir
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import self_checks


def _checks(tmp_path: Path, golden: Path | None) -> dict[str, object]:
    scratch = Scratch(tmp_path / "scratch")
    return {c.test_id: c for c in self_checks(golden, lambda: scratch)}


def test_st_oq_18_and_19_hold_on_the_golden_bundles(tmp_path: Path) -> None:
    checks = _checks(tmp_path, repo_golden_dir())
    for test_id, want in (("ST-OQ-18", trusted_time.TIME_WANT),
                          ("ST-OQ-19", trusted_time.FORMAT_WANT)):
        check = checks[test_id]
        assert check.not_executed is None  # type: ignore[attr-defined]
        outcome = check.run()  # type: ignore[attr-defined]
        assert outcome.ok, outcome.reason
        assert outcome.observed == want


def test_without_golden_bundles_they_are_not_executed(tmp_path: Path) -> None:
    checks = _checks(tmp_path, None)
    assert checks["ST-OQ-18"].not_executed  # type: ignore[attr-defined]
    assert checks["ST-OQ-19"].not_executed  # type: ignore[attr-defined]


def test_st_oq_18_fails_when_verify_ignores_dropped_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trusted_time_module._Judge, "unstamped", lambda *a: None)
    golden = repo_golden_dir()
    assert golden is not None
    outcome = trusted_time.golden_tokens(golden / "v2")
    assert not outcome.ok and outcome.observed["timestamp dropped"] == "valid"


def test_st_oq_18_fails_on_a_golden_bundle_without_its_tokens(tmp_path: Path) -> None:
    golden = repo_golden_dir()
    assert golden is not None
    v2 = tmp_path / "v2"
    shutil.copytree(golden / "v2", v2)
    expected = json.loads((v2 / "expected.json").read_text())
    records = v2 / expected["bundle"] / "records.jsonl"
    lines = records.read_bytes().splitlines(keepends=True)
    records.write_bytes(b"".join(lines[:-3]))  # the signature and both timestamps gone
    outcome = trusted_time.golden_tokens(v2)
    assert not outcome.ok
