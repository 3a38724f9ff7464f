"""Self check of the testinfra runner (VQ-47): pytest with testinfra runs here and turns a
tiny built-in suite, run against ``local://``, into one observation per test function."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from qualification.checks.testinfra import TESTINFRA, expand
from qualification.execution.testinfra import run_testinfra
from qualification.selftest.base import Outcome, SelfCheck

#: The built-in suite: one test that passes, one whose assertion fails, one that skips.
SUITE = b'''import pytest


@pytest.mark.urs("VQ-47")
def test_passes(host):
    assert host.file("/").is_directory


def test_assertion_fails(host):
    assert host.run("echo vqual").stdout.strip() == "not vqual"


def test_skips(host):
    pytest.skip("vqual selftest skip")
'''
#: What each test's observation must say.
EXPECTED = {"test_passes": "passed", "test_assertion_fails": "failed", "test_skips": "skipped"}


def _runs_the_builtin_suite() -> Outcome:
    with tempfile.TemporaryDirectory(prefix="vqual-selftest-testinfra-") as tmp:
        module = Path(tmp) / "test_selftest.py"
        module.write_bytes(SUITE)
        expanded = expand({"module": module.name}, Path(tmp))
        requests = [
            TESTINFRA.request(one.params).to_json() | {"test": one.name} for one in expanded
        ]
        answers = run_testinfra(requests, {"ansible_connection": "local"}, target="localhost")
    observed: dict[str, Any] = {}
    for request in requests:
        answer = answers.get(request["key"]) or {}
        value = answer.get("value") or {}
        observed[request["test"]] = value.get("outcome") or answer.get("error")
    wrong = [
        f"{name}: expected {want}, observed {observed.get(name)}"
        for name, want in EXPECTED.items()
        if observed.get(name) != want
    ]
    urs = [one.requirements for one in expanded if one.name == "test_passes"]
    if urs != [("VQ-47",)]:
        wrong.append(f"test_passes: urs marker read as {urs}")
    return Outcome(not wrong, observed, "; ".join(wrong) or None)


def testinfra_checks() -> list[SelfCheck]:
    """OQ: the testinfra runner is importable and decides a built-in suite as written."""
    return [
        SelfCheck(
            "ST-OQ-20",
            "a testinfra suite runs through pytest against local:// and each test function "
            "becomes an observation: passed, failed (assertion), skipped; urs markers are read",
            "OQ",
            "VQ-47",
            "qualification.execution.testinfra.run_testinfra on a built-in suite "
            f"(sha256 {hashlib.sha256(SUITE).hexdigest()[:16]}), local://",
            {"op": "equals", "value": EXPECTED},
            _runs_the_builtin_suite,
        ),
    ]
