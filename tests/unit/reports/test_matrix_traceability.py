"""Complete traceability (docs/spec.md, "Requirements file"): every requirement of the spec's
requirements file is a row with its text and one row kind, and across the shipped specs none
is left not covered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qualification.reports.html import render_report
from qualification.reports.matrix import (
    NOT_COVERED,
    ROW_EVIDENCE,
    ROW_KINDS,
    ROW_NONE,
    ROW_PROCEDURE,
    ROW_SPEC,
    ROW_TEST,
    Procedure,
    Requirement,
    requirements_of,
    row_kind,
    traceability,
)
from qualification.spec import Spec, load_spec
from tests.unit.reports.reports_testlib import RunRecords

SPECS = Path(__file__).resolve().parents[3] / "ansible_collections/vqual/qualification/specs"

CATALOGUE = (
    Requirement("URS-A-01", "tested here"),
    Requirement("URS-B-01", "tested by another spec", specs=("other",)),
    Requirement("URS-C-01", "vqual's own evidence", evidence=("ST-OQ-02",)),
    Requirement("URS-D-01", "a procedure", procedure=Procedure("SOP-1", "sops/d.md", "ab" * 32)),
    Requirement("URS-E-01", "nothing covers it"),
    Requirement("URS-F-01", "cited only by this spec", specs=("kvm-cluster",)),
)


def _run(catalogue: tuple[Requirement, ...] = CATALOGUE) -> RunRecords:
    run = RunRecords()
    run.start([{"name": "kvm1", "kinds": ["kvm_host"], "risk": "high"}],
              [{"test_id": "T-1", "target": "kvm1", "protocol": "IQ"}], ["URS-A-01"])
    run.records[0]["data"]["traceability"] = {
        "file": "urs", "requirements": [r.to_json() for r in catalogue]
    }
    run.result("T-1", "kvm1", "pass", "ok", requirements=("URS-A-01",))
    run.end()
    return run


def test_each_requirement_of_the_file_is_a_row_with_its_text_and_one_kind():
    run = _run()
    rows = traceability(run.records, ["URS-A-01"], requirements_of(run.records[0]["data"]))
    assert [(r.requirement, r.text, r.kind) for r in rows] == [
        ("URS-A-01", "tested here", ROW_TEST),
        ("URS-B-01", "tested by another spec", ROW_SPEC),
        ("URS-C-01", "vqual's own evidence", ROW_EVIDENCE),
        ("URS-D-01", "a procedure", ROW_PROCEDURE),
        ("URS-E-01", "nothing covers it", ROW_NONE),
        # spec name unknown to traceability(): its own name would count as another spec
        ("URS-F-01", "cited only by this spec", ROW_SPEC),
    ]
    assert [r.status for r in rows][1:] == [NOT_COVERED] * 5  # no result of this run covers them


def test_a_spec_is_not_another_spec_covering_its_own_requirement():
    assert row_kind(False, CATALOGUE[5], spec="kvm-cluster") == ROW_NONE
    assert row_kind(False, CATALOGUE[5], spec="master-vm") == ROW_SPEC
    # a test of this run wins over every mapping
    assert row_kind(True, CATALOGUE[3]) == ROW_TEST


def test_the_report_shows_text_kind_and_never_shows_a_procedure_as_passed():
    html = render_report(_run().records)
    section = html[html.index('<section id="traceability">'):]
    section = section[: section.index("</section>")]
    row_d = section[section.index("URS-D-01"):]
    row_d = row_d[: row_d.index("</tr>")]
    assert "a procedure" in row_d and "<td>P</td>" in row_d
    assert "SOP-1" in row_d and "ab" * 32 in row_d and "PASS" not in row_d
    row_b = section[section.index("URS-B-01"):]
    assert "covered by shipped spec other" in row_b[: row_b.index("</tr>")]
    row_e = section[section.index("URS-E-01"):]
    assert "NOT COVERED" in row_e[: row_e.index("</tr>")]
    # the kvm-cluster run's own spec does not count as another spec
    row_f = section[section.index("URS-F-01"):]
    assert "NOT COVERED" in row_f[: row_f.index("</tr>")]
    assert ("not covered by an executed test: 5, of which mapped to another shipped spec, "
            "vqual's own evidence or a procedure: 3.") in section


def test_a_run_without_a_requirements_file_keeps_the_declared_rows():
    run = RunRecords()
    run.start([], [], ["URS-A-01"])
    run.end()
    rows = traceability(run.records, ["URS-A-01"], requirements_of(run.records[0]["data"]))
    assert [(r.requirement, r.text, r.kind) for r in rows] == [("URS-A-01", "", ROW_NONE)]


# ---------------------------------------------------------------- the shipped specs


def _report_of(spec: Spec) -> str:
    """The report of a run of ``spec`` in which each of its tests ran once, recorded the way
    the recorder records it (run.start's traceability from the plan's spec)."""
    run = RunRecords()
    planned = [{"test_id": t.id, "target": "t1", "protocol": t.protocol} for t in spec.tests]
    run.start([{"name": "t1", "kinds": ["kvm_host"], "risk": "high"}], planned,
              list(spec.requirements))
    run.records[0]["data"]["spec"]["name"] = spec.name
    run.records[0]["data"]["traceability"] = spec.traceability_record()
    for test in spec.tests:
        run.result(test.id, "t1", "pass", "ok", requirements=test.requirements)
    run.end()
    return render_report(run.records)


def _matrix_rows(html: str) -> dict[str, tuple[str, str]]:
    """requirement id -> (text, kind) as the report's matrix shows them."""
    section = html[html.index('<section id="traceability">'):]
    section = section[: section.index("</section>")]
    found = re.findall(
        r'<tr class="[^"]*">\n<td>(URS-[A-Z0-9-]+)<br><span class="note">([^<]+)</span></td>\n'
        r"<td>([^<]+)</td>",
        section,
    )
    return {rid: (text, ROW_NONE if kind == "none" else kind) for rid, text, kind in found}


SHIPPED = sorted(SPECS.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_the_report_of_each_shipped_spec_shows_all_29_requirements_with_text_and_kind(path):
    spec = load_spec(path)
    rows = _matrix_rows(_report_of(spec))
    assert len(rows) == 29
    assert all(text.strip() for text, _ in rows.values())
    assert {kind for _, kind in rows.values()} <= set(ROW_KINDS)
    cited = {r for t in spec.tests for r in t.requirements}
    assert {rid for rid, (_, kind) in rows.items() if kind == ROW_TEST} == cited


def test_across_the_shipped_specs_no_requirement_is_not_covered():
    kinds: dict[str, set[str]] = {}
    for path in SHIPPED:
        for rid, (_, kind) in _matrix_rows(_report_of(load_spec(path))).items():
            kinds.setdefault(rid, set()).add(kind)
    assert len(kinds) == 29
    assert [rid for rid, seen in kinds.items() if seen == {ROW_NONE}] == []
    # and no single spec's report shows one as not covered either
    assert [rid for rid, seen in kinds.items() if ROW_NONE in seen] == []
