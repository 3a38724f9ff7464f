"""JUnit XML, parsed back with xml.etree."""

from __future__ import annotations

import copy
import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from qualification.errors import BadInputError
from qualification.reports.junit import render_junit
from tests.unit.reports.reports_testlib import SPEC_DIGEST, XSS, RunRecords, qualification_run

SCHEMAS = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"


def _parse(records):
    return ET.fromstring(render_junit(records).encode("utf-8"))


def _cases(root):
    return {(case.get("classname"), case.get("name")): case for case in root.iter("testcase")}


def _out(case):
    return case.find("system-out").text


def test_one_suite_per_target_and_protocol_with_run_properties(run):
    root = _parse(run.records)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["kvm1.IQ", "kvm1.OQ", "kvm2.IQ"]
    for suite in suites:
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props == {
            "change_id": "CHG0001234",
            "run_id": "20261126T030000Z-a1b2c3",
            "target": suite.get("name").split(".")[0],
            "spec_digest": SPEC_DIGEST,
        }


def test_testcase_name_and_classname_and_no_time_without_the_observation_s_own(run):
    cases = _cases(_parse(run.records))
    case = cases[("kvm1.OQ", "OQ-MIG-01 live migration downtime")]
    # Records without observation_ms (written before it): no time, never the host's 3.1 s.
    assert case.get("time") is None
    assert ("kvm1.IQ", "IQ-SSH-01 root login over SSH disabled") in cases
    assert ("kvm2.IQ", "IQ-SSH-01 root login over SSH disabled") in cases


def _timed_run() -> RunRecords:
    run = RunRecords()
    planned = [{"test_id": t, "target": "kvm1", "protocol": "IQ"} for t in ("T-1", "T-2", "T-3")]
    run.start([], planned)
    # One host round trip of 2 s for all three (duration_ms); each observation its own time.
    run.result("T-1", "kvm1", "pass", "no", duration_ms=2000.0, observation_ms=1250.5)
    run.result("T-2", "kvm1", "fail", "yes", duration_ms=2000.0, observation_ms=0.25)
    run.result("T-3", "kvm1", "pass", "no", duration_ms=2000.0)
    run.end()
    return run


def test_each_testcase_has_its_observation_s_own_time_and_suites_add_them_up():
    root = _parse(_timed_run().records)
    times = {case.get("name"): case.get("time") for case in root.iter("testcase")}
    assert float(times["T-1"]) == pytest.approx(1.2505)
    assert float(times["T-2"]) == pytest.approx(0.00025)
    assert times["T-3"] is None
    (suite,) = root.findall("testsuite")
    assert suite.get("time") == "1.251" and root.get("time") == "1.251"


def test_suite_names_its_host_and_timestamps_have_no_fraction_nor_zone(run):
    root = _parse(run.records)
    for suite in root.findall("testsuite"):
        assert suite.get("hostname") == suite.get("name").split(".")[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
    assert all(case.get("timestamp") is None for case in root.iter("testcase"))
    assert all(el.get("disabled") is None for el in (root, *root.iter("testsuite")))


#: tests/fixtures/schemas/README.md: where the schema comes from; a silent edit fails here.
JUNIT_XSD_SHA256 = "a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6"


def test_the_file_is_valid_against_the_xunit_junit_schema(run):
    xsd = SCHEMAS / "junit-10.xsd"
    assert hashlib.sha256(xsd.read_bytes()).hexdigest() == JUNIT_XSD_SHA256
    schema = xmlschema.XMLSchema(xsd)
    for records in (run.records, _timed_run().records, qualification_run(finish=False).records):
        schema.validate(render_junit(records))


def test_fail_is_a_failure_naming_requirements_expected_and_observed(run):
    case = _cases(_parse(run.records))[("kvm2.IQ", "IQ-SSH-01 root login over SSH disabled")]
    failure = case.find("failure")
    assert failure is not None
    message = failure.get("message")
    assert "URS-CL-01" in message
    assert "expected: eq no" in message
    assert f"observed: {XSS}" in message  # escaped in the file, the text round-trips
    assert case.find("error") is None and case.find("skipped") is None


def test_error_and_not_executed(run):
    cases = _cases(_parse(run.records))
    error = cases[("kvm1.IQ", "IQ-HCL-02 host model on the HCL")]
    assert "host unreachable" in error.find("error").get("message")
    assert error.find("failure") is None
    skipped = cases[("kvm2.IQ", "IQ-HCL-02 host model on the HCL")]
    assert skipped.find("skipped").get("message") == (
        "not executed: the test driver has no DMI data"
    )
    assert skipped.find("error") is None


def test_waived_passes_and_names_the_deviation(run):
    case = _cases(_parse(run.records))[("kvm1.OQ", "OQ-MIG-01 live migration downtime")]
    assert [child.tag for child in case] == ["system-out"]
    assert "waived by deviation DEV-0042" in _out(case)


def test_every_case_says_requirements_method_expected_observed_and_verdict(run):
    for case in _parse(run.records).iter("testcase"):
        lines = _out(case).splitlines()
        keys = [line.split(":", 1)[0] for line in lines]
        assert keys[:5] == ["requirements", "method", "expected", "observed", "verdict"]
    ok = _cases(_parse(run.records))[("kvm1.IQ", "IQ-SSH-01 root login over SSH disabled")]
    assert _out(ok).splitlines()[:5] == [
        "requirements: URS-CL-01",
        "method: host.file /etc/ssh/sshd_config",
        "expected: eq no",
        "observed: no",
        "verdict: pass",
    ]


def test_structured_values_are_shown_as_sorted_json(run):
    case = _cases(_parse(run.records))[("kvm1.OQ", "OQ-MIG-01 live migration downtime")]
    out = _out(case)
    assert "expected: le 500 (path: downtime_ms)" in out
    assert 'observed: {"downtime_ms": 950}' in out


def test_suite_counts(run):
    root = _parse(run.records)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    kvm2 = suites["kvm2.IQ"]
    assert (kvm2.get("tests"), kvm2.get("failures"), kvm2.get("errors"), kvm2.get("skipped")) == (
        "3",
        "1",
        "0",
        "1",
    )
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "1", "1")


def test_planned_tests_without_result_in_an_unfinished_run_are_errors():
    run = qualification_run(finish=False, ntp=False)
    cases = _cases(_parse(run.records))
    case = cases[("kvm2.IQ", "IQ-NTP-03")]
    assert case.find("error").get("message") == "not executed: run did not finish"


def test_planned_tests_of_a_skipped_host_name_the_skip():
    run = qualification_run(finish=False, ntp=False)
    run.add("host.skipped", {"target": "kvm2", "reason": "in maintenance mode"})
    run.end()
    case = _cases(_parse(run.records))[("kvm2.IQ", "IQ-NTP-03")]
    assert case.find("error").get("message") == ("not executed: host skipped: in maintenance mode")


def test_same_records_give_the_same_bytes_whatever_the_key_order(run):
    first = render_junit(run.records)
    reordered = [
        {key: copy.deepcopy(rec[key]) for key in reversed(list(rec))} for rec in run.records
    ]
    for rec in reordered:
        rec["data"] = {key: rec["data"][key] for key in reversed(list(rec["data"]))}
    assert render_junit(run.records) == first
    assert render_junit(reordered) == first


def test_unknown_verdict_is_never_a_pass():
    run = RunRecords()
    run.start([], [{"test_id": "T-1", "target": "h", "protocol": "IQ"}])
    run.result("T-1", "h", "maybe", 1)
    case = next(_parse(run.records).iter("testcase"))
    assert "unknown verdict 'maybe'" in case.find("error").get("message")


def test_records_without_run_start_are_refused(run):
    with pytest.raises(BadInputError, match="run.start"):
        render_junit(run.records[1:])
    with pytest.raises(BadInputError, match="no records"):
        render_junit([])


def test_system_out_points_to_the_raw_output_file():
    run = RunRecords()
    run.start([], [{"test_id": "T-1", "target": "h", "protocol": "IQ"}])
    digest = "cd" * 32
    run.result("T-1", "h", "pass", "ok", raw={"sha256": digest, "file": f"raw/{digest}.txt"})
    case = next(_parse(run.records).iter("testcase"))
    assert _out(case).splitlines()[-1] == f"raw output: raw/{digest}.txt (sha256 {digest})"
