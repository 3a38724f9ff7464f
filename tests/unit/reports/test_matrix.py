"""The traceability matrix on its own: requirement -> tests -> results -> deviations."""

from __future__ import annotations

import pytest

from qualification.errors import BadInputError
from qualification.reports.matrix import COVERED, NOT_COVERED, traceability
from tests.unit.reports.reports_testlib import (
    DECLARED,
    PLANNED,
    TARGETS,
    RunRecords,
    qualification_run,
)


def _by_id(rows):
    return {row.requirement: row for row in rows}


def test_declared_requirements_come_first_in_spec_order_then_undeclared_sorted(run):
    rows = traceability(run.records, DECLARED)
    assert [r.requirement for r in rows] == DECLARED + ["URS-AT-02"]
    assert [r.declared for r in rows] == [True, True, True, True, False]


def test_requirement_without_any_test_is_not_covered(run):
    row = _by_id(traceability(run.records, DECLARED))["URS-AT-01"]
    assert row.status == NOT_COVERED
    assert row.tests == ()
    assert row.verdict is None


def test_requirement_with_only_not_executed_tests_is_not_covered(run):
    row = _by_id(traceability(run.records, DECLARED))["URS-REG-01"]
    assert row.status == NOT_COVERED
    assert [(t.test_id, t.target, t.verdict, t.executed) for t in row.tests] == [
        ("IQ-HCL-02", "kvm2", "not-executed", False)
    ]


def test_covered_requirement_lists_every_result_its_worst_verdict_and_deviations(run):
    row = _by_id(traceability(run.records, DECLARED))["URS-CL-01"]
    assert row.status == COVERED
    assert [(t.test_id, t.target, t.verdict) for t in row.tests] == [
        ("IQ-SSH-01", "kvm1", "pass"),
        ("OQ-MIG-01", "kvm1", "waived"),
        ("IQ-SSH-01", "kvm2", "fail"),
    ]
    assert row.verdict == "fail"
    assert row.deviations == ("DEV-0042",)


def test_waived_outranks_pass_so_the_deviation_shows():
    run = RunRecords()
    run.start(TARGETS[:1], PLANNED[:1], ["URS-CL-01"])
    run.result("IQ-SSH-01", "kvm1", "pass", "no", requirements=("URS-CL-01",))
    run.result("OQ-MIG-01", "kvm1", "waived", 950, requirements=("URS-CL-01",), deviation="DEV-7")
    row = traceability(run.records, ["URS-CL-01"])[0]
    assert (row.verdict, row.deviations, row.status) == ("waived", ("DEV-7",), COVERED)


def test_planned_test_without_result_traces_through_its_result_on_another_target():
    # IQ-NTP-03 ran on kvm1 only; the crash left kvm2's run of it without a result.
    run = RunRecords()
    planned = [
        {"test_id": "IQ-NTP-03", "target": "kvm1", "protocol": "IQ"},
        {"test_id": "IQ-NTP-03", "target": "kvm2", "protocol": "IQ"},
    ]
    run.start(TARGETS, planned, ["URS-AT-02"])
    run.result("IQ-NTP-03", "kvm1", "pass", "yes", requirements=("URS-AT-02",))
    row = traceability(run.records, ["URS-AT-02"])[0]
    assert [(t.target, t.verdict, t.executed) for t in row.tests] == [
        ("kvm1", "pass", True),
        ("kvm2", "error", False),
    ]
    assert row.verdict == "error"


def test_only_missing_results_leave_the_requirement_not_covered():
    run = qualification_run(finish=False, ntp=False)
    rows = _by_id(traceability(run.records, DECLARED + ["URS-AT-02"]))
    assert rows["URS-AT-02"].status == NOT_COVERED


def test_duplicate_declared_ids_give_one_row(run):
    rows = traceability(run.records, ["URS-CL-01", "URS-CL-01"])
    assert [r.requirement for r in rows].count("URS-CL-01") == 1


def test_records_that_are_not_records_are_refused():
    with pytest.raises(BadInputError, match="record 0"):
        traceability([{"seq": 0}], [])
