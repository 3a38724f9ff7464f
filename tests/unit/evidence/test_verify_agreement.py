"""A run agrees with itself (issue 13, item 2): ``run.end``'s counts, the sealed JUnit and the
sealed report are checked against the records by meaning, and ``prev_run_seal`` must name a
run of the change. Attack 2 of the issue: a failed result turned into a pass and the chain
signed again with the executor's own key is invalid, naming the test."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from qualification.evidence.agreement import junit_problems, report_problems
from qualification.evidence.bundle import BundleWriter
from qualification.evidence.verify import verify_bundle
from qualification.execution.recorder import records_as_dicts
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.verdict import overall, zero_counts
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    Keys,
    add_renderings,
    check_result,
    make_keys,
    planned,
    run_start_data,
)
from tests.unit.evidence.tamper_testlib import flip, records, rewrite

#: check_result() fails its fourth result: KVM-17 on kvm01.lab
FAILED = ("KVM-17", "kvm01.lab")


def real_run(evidence: Path, keys: Keys, run_id: str, prev: str | None = None) -> Path:
    """A sealed run whose JUnit and report are rendered from its records, as a run does."""
    w = BundleWriter.create(evidence, CHANGE, run_id, keys.executor, "jane.doe")
    w.append("run.start", run_start_data(prev))
    counts = zero_counts()
    for i, t in enumerate(planned()):
        data = check_result(w, t["test_id"], t["target"], i)
        counts[data["verdict"]] += 1
        w.append("check.result", data)
    w.sync()
    recs = records_as_dicts(w.path)
    w.add_file("junit.xml", render_junit(recs).encode("utf-8"))
    w.add_file("report.html", render_report(recs).encode("utf-8"))
    w.seal(counts, len(planned()), len(planned()), overall(counts).value)
    return w.path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path)


@pytest.fixture
def run(tmp_path: Path, keys: Keys) -> Path:
    return real_run(tmp_path / "evidence", keys, "r1")


def _rows(run: Path) -> list[tuple[str, str, str, str]]:
    return [
        (r["data"]["test_id"], r["data"]["target"], r["data"]["protocol"], r["data"]["verdict"])
        for r in records(run)
        if r["kind"] == "check.result"
    ]


def test_an_honest_run_agrees_with_itself(run: Path, keys: Keys) -> None:
    res = verify_bundle(run, keys.trust, workers=1)
    assert res.status == "valid", res.problems
    assert not [w for w in res.warnings if "not compared" in w]
    assert b"data-test-id=" in (run / "report.html").read_bytes()


def test_a_fail_turned_into_a_pass_and_resigned_is_invalid_naming_the_test(
    run: Path, keys: Keys
) -> None:
    rewrite(run, keys.executor, flip(*FAILED))
    res = verify_bundle(run, keys.trust, workers=1)
    assert res.status == "invalid"
    text = "\n".join(res.problems)
    # Every signature and the chain verify: only the disagreement is left.
    assert "does not verify" not in text and "chain broken" not in text
    assert "run.end: counts fail is 2, the records have 1 fail results" in text
    assert "run.end: counts pass is 13, the records have 14 pass results" in text
    assert "junit.xml: test KVM-17 on kvm01.lab.IQ: says fail, the records say pass" in text
    assert "report.html: test KVM-17 on kvm01.lab: says fail, the records say pass" in text


def test_counts_rewritten_to_match_still_leave_the_junit_and_report(
    run: Path, keys: Keys
) -> None:
    def edit(rec: dict[str, Any]) -> dict[str, Any] | None:
        flip(*FAILED)(rec)  # in place
        if rec["kind"] == "run.end":
            counts = rec["data"]["counts"]
            counts["fail"], counts["pass"] = counts["fail"] - 1, counts["pass"] + 1
        return rec

    rewrite(run, keys.executor, edit)
    res = verify_bundle(run, keys.trust, workers=1)
    assert res.status == "invalid"
    assert not [p for p in res.problems if p.startswith("run.end")]
    assert [p.split(":")[0] for p in res.problems] == ["junit.xml", "report.html"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("planned", 14, "run.end: planned is 14, run.start plans 15 tests"),
        ("executed", 3, "run.end: executed is 3, the records have 15 results (0 not executed)"),
        ("verdict", "pass", "run.end: verdict is pass, the records give fail"),
    ],
)
def test_run_end_fields_are_recomputed(
    run: Path, keys: Keys, field: str, value: object, problem: str
) -> None:
    def edit(rec: dict[str, Any]) -> dict[str, Any] | None:
        if rec["kind"] == "run.end":
            rec["data"][field] = value
        return rec

    rewrite(run, keys.executor, edit)
    res = verify_bundle(run, keys.trust, workers=1)
    assert res.status == "invalid"
    assert res.problems == [problem]


def test_junit_is_read_by_meaning_not_bytes(run: Path) -> None:
    rows = _rows(run)
    junit = (run / "junit.xml").read_bytes()
    # Another renderer: no indentation, other attributes, durations and timestamps changed.
    other = re.sub(rb">\s+<", b"><", junit).replace(b'time="0.125"', b'time="9"')
    other = other.replace(b"<testcase ", b'<testcase hostname="ci01" ')
    assert other != junit
    assert junit_problems(other, rows) == ([], [])
    edited = junit.replace(b"<failure", b"<skipped", 1).replace(b"</failure>", b"</skipped>", 1)
    problems, _ = junit_problems(edited, rows)
    assert problems and "KVM-17" in problems[0]


def test_a_report_without_marks_is_read_by_its_table_text(run: Path) -> None:
    rows = _rows(run)
    html = (run / "report.html").read_bytes()
    unmarked = re.sub(rb' data-(test-id|target|verdict)="[^"]*"', b"", html)
    assert b"data-test-id" not in unmarked
    assert report_problems(unmarked, rows) == ([], [])
    flipped = [(*r[:3], "pass") if r[:2] == FAILED else r for r in rows]
    problems, _ = report_problems(unmarked, flipped)
    assert problems == ["report.html: test KVM-17 on kvm01.lab: says fail, the records say pass"]


def test_a_marked_row_edited_is_found(run: Path) -> None:
    html = (run / "report.html").read_bytes()
    edited = html.replace(
        b'data-test-id="KVM-17" data-target="kvm01.lab" data-verdict="fail"',
        b'data-test-id="KVM-17" data-target="kvm01.lab" data-verdict="pass"',
    )
    assert edited != html
    problems, _ = report_problems(edited, _rows(run))
    assert problems == ["report.html: test KVM-17 on kvm01.lab: says pass, the records say fail"]


def test_prev_run_seal_must_name_a_run_of_the_change(tmp_path: Path, keys: Keys) -> None:
    evidence = tmp_path / "evidence"
    first = real_run(evidence, keys, "r1")
    lone = real_run(tmp_path / "elsewhere", keys, "r2", prev="ab" * 32)
    res = verify_bundle(lone, keys.trust, workers=1)
    assert res.status == "valid"
    assert any("no earlier run of this change is here" in w for w in res.warnings)
    shutil.copytree(lone, evidence / CHANGE / "r2")
    res = verify_bundle(evidence / CHANGE / "r2", keys.trust, workers=1)
    assert res.status == "invalid"
    assert res.problems == [
        (
            f"run.start: prev_run_seal {'ab' * 8} is the seal of no run of {CHANGE} here "
            "(deleted, replaced, rewritten or cut before its run.end)"
        )
    ]
    assert verify_bundle(first, keys.trust, workers=1).status == "valid"


def test_the_junit_scan_reads_what_the_xml_parser_reads(run: Path) -> None:
    from qualification.evidence.agreement import _parse_cases, _scan_cases

    junit = (run / "junit.xml").read_bytes()
    scanned = _scan_cases(junit.decode("utf-8"))
    assert scanned is not None and len(scanned) == 15
    assert scanned == _parse_cases(junit)
    # A form the scan does not read exactly goes to the parser: same answer, or "not XML".
    commented = junit.replace(b"<testsuites", b"<!-- another writer --><testsuites", 1)
    assert _scan_cases(commented.decode("utf-8")) is None
    assert junit_problems(commented, _rows(run)) == ([], [])
    broken = commented.replace(b"</testsuites>", b"")
    problems, _ = junit_problems(broken, _rows(run))
    assert problems[0].startswith("junit.xml: is not XML")


def test_a_fingerprint_must_carry_the_digest_of_its_content(tmp_path: Path, keys: Keys) -> None:
    """A fingerprint edited and signed again with its old digest: the baseline would refuse
    it (fingerprints_from_records), so verify does, naming the line."""
    from qualification.checks.fingerprint_model import fingerprint_record, make_fingerprint

    good = fingerprint_record(make_fingerprint("kvm01.lab", "host", identity={"name": "kvm01"}))
    edited = {**good, "identity": {"name": "kvm99"}}
    w = BundleWriter.create(tmp_path / "evidence", CHANGE, "r1", keys.executor, "jane.doe")
    w.append("run.start", {**run_start_data(), "planned": []})
    w.append("fingerprint", good)
    w.append("fingerprint", edited)
    add_renderings(w)  # format v2 seals real renderings
    w.seal(zero_counts(), 0, 0, "pass")
    res = verify_bundle(w.path, keys.trust, workers=1)
    assert res.status == "invalid"
    assert [p.split(":")[0] for p in res.problems] == ["records.jsonl line 3 (seq 2)"]
    assert f"fingerprint digest {good['digest'][:16]} is not that of its content" in res.problems[0]


def test_a_run_whose_planned_tests_lack_results_cannot_say_pass() -> None:
    """Every renderer shows a planned test without a result as an error, and the writers
    record one before sealing: run.end's verdict cannot be better than that."""
    from qualification.evidence.agreement import count_problems

    rows = [(f"T-{i}", "h", "IQ", "pass") for i in range(13)]
    end = {"counts": {"pass": 13}, "planned": 15, "executed": 13, "verdict": "pass"}
    assert count_problems(end, rows, 15, 0) == []  # as verify judged before
    assert count_problems(end, rows, 15, 0, unrecorded=2) == [
        "run.end: verdict is pass, the records give error (2 planned tests without a result)"
    ]
    assert count_problems({**end, "verdict": "error"}, rows, 15, 0, unrecorded=2) == []
