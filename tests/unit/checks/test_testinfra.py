"""check: testinfra: a module read statically into one test per function, markers as URS ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification import checks
from qualification.checks.base import Observed, StepNotExecuted
from qualification.checks.testinfra import TESTINFRA, CollectError, collect, expand
from qualification.verdict import Verdict

SUITE = b'''import pytest
from pytest import mark

pytestmark = [pytest.mark.urs("URS-HV-02"), pytest.mark.slow]


@pytest.mark.urs("URS-SEC-01", "URS-SEC-02")
def test_a(host):
    pass


def helper():
    pass


@mark.urs("URS-SEC-03")
class TestGroup:
    pytestmark = pytest.mark.urs("URS-OPS-01")

    def test_b(self, host):
        pass

    def not_a_test(self):
        pass


class Helper:
    def test_ignored(self):
        pass
'''


def test_functions_and_class_methods_are_collected_with_their_urs_markers() -> None:
    found = {t.name: t.requirements for t in collect(SUITE, "suite.py")}
    assert found == {
        "test_a": ("URS-HV-02", "URS-SEC-01", "URS-SEC-02"),
        "TestGroup::test_b": ("URS-HV-02", "URS-SEC-03", "URS-OPS-01"),
    }


def test_expand_resolves_against_the_base_and_pins_the_file(tmp_path: Path) -> None:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_s.py").write_bytes(SUITE)
    expanded = expand({"module": "suite/test_s.py", "sudo": True}, tmp_path)
    assert [e.name for e in expanded] == ["test_a", "TestGroup::test_b"]
    params = expanded[0].params
    assert params["path"] == str(tmp_path / "suite" / "test_s.py")
    assert params["test"] == "test_a" and params["sudo"] is True
    assert len(params["sha256"]) == 64
    one = expand({"module": "suite/test_s.py::TestGroup"}, tmp_path)
    assert [e.name for e in one] == ["TestGroup::test_b"]


@pytest.mark.parametrize(
    ("source", "module", "message"),
    [
        (None, "missing.py", "testinfra module not found"),
        (b"def test_x(:\n", "test_s.py", "is not valid Python (line 1)"),
        (b"def helper():\n    pass\n", "test_s.py", "has no tests"),
        (SUITE, "test_s.py::test_nope", "no test 'test_nope'"),
    ],
)
def test_a_module_that_cannot_run_is_one_line(
    tmp_path: Path, source: bytes | None, module: str, message: str
) -> None:
    if source is not None:
        (tmp_path / "test_s.py").write_bytes(source)
    with pytest.raises(CollectError) as raised:
        expand({"module": module}, tmp_path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({}, "parameter module"),
        ({"module": "::test_x"}, "parameter module"),
        ({"module": "a.py", "backend": "docker"}, "backend must be one of"),
        ({"module": "a.py", "sudo": "yes"}, "sudo must be"),
        ({"module": "a.py", "hosts": "x"}, "unknown parameter"),
    ],
)
def test_bad_params_are_named(params: dict, problem: str) -> None:
    assert problem in (TESTINFRA.validate_params(params) or "")


def test_valid_params_pass() -> None:
    assert TESTINFRA.validate_params({"module": "a.py::test_x", "backend": "ssh"}) is None


def test_outcomes_become_verdicts() -> None:
    check = checks.get_check("testinfra")
    expect = {"op": "equals", "value": "passed"}

    def decide(value: dict) -> checks.Outcome:
        return checks.evaluate(check, checks.Observation(value=value), {}, expect)

    assert decide({"outcome": "passed"}).verdict == Verdict.PASS
    failed = decide({"outcome": "failed", "message": "AssertionError: assert 1 == 2"})
    assert failed.verdict == Verdict.FAIL and failed.reason is not None
    assert failed.reason.startswith("AssertionError: assert 1 == 2")
    errored = decide({"outcome": "error", "message": "RuntimeError: no route to host"})
    assert errored.verdict == Verdict.FAIL
    assert errored.reason is not None and errored.reason.startswith("RuntimeError: no route")
    skipped = decide({"outcome": "skipped", "message": "no systemd"})
    assert skipped.verdict == Verdict.NOT_EXECUTED and skipped.reason == "skipped: no systemd"


def test_extract_says_what_it_observed() -> None:
    assert TESTINFRA.extract({"outcome": "passed"}, {}) == "passed"
    assert TESTINFRA.extract({"outcome": "error", "message": "boom"}, {}) == Observed(
        "failed", reason="boom"
    )
    with pytest.raises(StepNotExecuted):
        TESTINFRA.extract({"outcome": "skipped"}, {})


def test_requests_of_one_module_differ_only_by_test() -> None:
    a = TESTINFRA.request({"module": "m.py", "path": "/s/m.py", "test": "test_a", "sha256": "0"})
    b = TESTINFRA.request({"module": "m.py", "path": "/s/m.py", "test": "test_b", "sha256": "0"})
    assert a.probe == b.probe == "testinfra" and a.key() != b.key()
    assert dict(a.args) == {"path": "/s/m.py", "test": "test_a", "sha256": "0"}
