"""Baselines from live systems, the parts that need no run: the value each operator takes
from an observation, the expected-values file, value_from falling back to it, capture mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.checks import CAPTURED, evaluate, get_check
from qualification.checks.base import Observation
from qualification.errors import SpecError
from qualification.execution.capture import captured_values, value_for
from qualification.spec import InventoryModel, build_plan, load_spec
from qualification.verdict import Verdict
from tests.unit.spec.spec_testlib import VALID_SPEC, TinyRegistry


@pytest.mark.parametrize(
    ("op", "observed", "value"),
    [("equals", "debian", "debian"), ("in", "12", ["12"]), ("regex", "6.1.0-28+x", r"6\.1\.0\-28\+x"),
     ("version", "9.0.0", "9.0.0"), ("range", 4096, {"min": 4096, "max": 4096})],
)
def test_each_operator_takes_the_observation_in_its_shape(op, observed, value):
    assert value_for(op, observed) == value


@pytest.mark.parametrize(("op", "observed"), [("contains", "x"), ("range", "big"), ("equals", None)])
def test_what_cannot_be_an_expectation_is_refused(op, observed):
    with pytest.raises(ValueError):
        value_for(op, observed)


def test_captured_values_nest_dotted_keys_and_list_what_was_skipped():
    results = [
        {"test_id": "A", "verdict": "not-executed", "observed": "debian",
         "expected": {"op": "equals", "value_from": "os.id", "capture": True}},
        {"test_id": "B", "verdict": "error", "observed": None, "reason": "no such file",
         "expected": {"op": "equals", "value_from": "os.name", "capture": True}},
        {"test_id": "C", "verdict": "pass", "observed": True, "expected": {"op": "equals"}},
    ]
    values, skipped = captured_values(results)
    assert values == {"os": {"id": "debian"}}
    assert skipped == ["B (os.name): no such file"]


def test_a_capture_expectation_records_the_value_and_judges_nothing():
    check = get_check("os_release")
    expect = {"op": "equals", "value_from": "os.id", "capture": True}
    outcome = evaluate(check, Observation(value={"ID": "debian"}), {"field": "ID"}, expect)
    assert (outcome.verdict, outcome.observed, outcome.reason) == (
        Verdict.NOT_EXECUTED, "debian", CAPTURED)


EXPECTED = """\
apiVersion: vqual/v1
kind: ExpectedValues
status: draft
captured: {by: carol, at: "2026-12-06T21:00:00Z", host: kvm1}
values:
  os: {version: "12"}
"""


def _spec(tmp_path: Path, expected: str = EXPECTED) -> Path:
    (tmp_path / "expected.yaml").write_text(expected)
    text = VALID_SPEC.replace('expect: {op: equals, value: "12"}',
                              "expect: {op: equals, value_from: os.version}")
    text = text.replace("tests:", "data_files:\n  baseline: expected.yaml\nexpected_values: baseline\ntests:", 1)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _expect(spec_path: Path, host_vars: dict) -> dict:
    spec = load_spec(spec_path, registry=TinyRegistry())
    inventory = InventoryModel.from_hostvars(
        {"h1": {"vqual_target_kinds": ["linux_host"], **host_vars}}, {"all": ["h1"]})
    (target,) = build_plan(spec, inventory, test_ids=["IQ-OS-001"]).targets
    return target.tests[0].expect


def test_value_from_falls_back_to_the_expected_values_file_and_the_host_wins(tmp_path):
    path = _spec(tmp_path)
    assert _expect(path, {})["value"] == "12"
    assert _expect(path, {"vqual_expected": {"os": {"version": "11"}}})["value"] == "11"


@pytest.mark.parametrize(
    ("text", "message"),
    [(EXPECTED.replace("ExpectedValues", "Protocol"), "not an expected-values file"),
     (EXPECTED.replace("status: draft", "status: final"), "status: must be 'draft' or absent"),
     (EXPECTED.replace('  os: {version: "12"}\n', "  []\n"), "values: must be a non-empty mapping")],
)
def test_a_malformed_expected_values_file_is_refused_when_the_spec_loads(tmp_path, text, message):
    with pytest.raises(SpecError) as err:
        load_spec(_spec(tmp_path, text), registry=TinyRegistry())
    assert message in str(err.value)
