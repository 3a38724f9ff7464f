"""The periodic review report (VQ-70) and the audit-trail review's filters and exports, from
real sealed bundles (a hostile run with failures and a waiver, two rolling patches)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from qualification.cli import main
from qualification.errors import BadInputError
from qualification.evidence.reader import read_bundle
from qualification.reports.audit_review import AuditFilter, export, review
from qualification.reports.periodic import periodic_context, render_periodic
from tests.unit.evidence.evidence_testlib import make_keys
from tests.unit.reports.review_testlib import HOSTILE_HOST, hostile_run, patch_run

NOW = datetime.now(UTC)
PERIOD = {"since": NOW - timedelta(days=1), "until": NOW + timedelta(days=1)}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("periodic")
    keys = make_keys(tmp / "state")
    return [hostile_run(tmp / "evidence", keys, "20260301T100000Z-aaaaaa", state=tmp / "state"),
            patch_run(tmp / "p1"), patch_run(tmp / "p2", running_vm=True)]


def test_the_report_names_runs_failures_deviations_open_items(bundles: list[Path]) -> None:
    runs = [read_bundle(b).records for b in bundles]
    context = periodic_context(runs, **PERIOD, voided=[bundles[1].name])
    assert sorted(r["run"] for r in context["runs"]) == sorted(b.name for b in bundles)
    assert {r["state"] for r in context["runs"]} == {"pending", "void"}
    failures = {(f["test"], f["target"]) for f in context["failures"]}
    assert failures == {("MOTD-01", HOSTILE_HOST), ("NTP-01", HOSTILE_HOST)}
    states = {d["id"] or d["target"]: d["state"] for d in context["deviations"]}
    assert states["DEV-0007"].startswith("waived")
    assert states["h1"].startswith("open")
    items = "\n".join(context["open_items"])
    assert "deviation raised on h1 is open" in items
    assert bundles[1].name not in items  # void: nothing open about it
    assert "fail run pending, no approval or rejection yet" in items


def test_runs_outside_the_period_are_left_out(bundles: list[Path]) -> None:
    runs = [read_bundle(b).records for b in bundles]
    later = periodic_context(runs, since=NOW + timedelta(days=1), until=NOW + timedelta(days=2))
    assert later["runs"] == [] and later["open_items"] == []


def test_the_page_escapes_target_data(bundles: list[Path]) -> None:
    html = render_periodic([read_bundle(b).records for b in bundles], **PERIOD)
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "Periodic review" in html and "Open items" in html


def test_vqual_review_periodic_writes_html_and_pdf(bundles: list[Path], tmp_path: Path) -> None:
    evidence = bundles[0].parents[1]
    day = NOW.strftime("%Y-%m-%d")
    nxt = (NOW + timedelta(days=1)).strftime("%Y-%m-%d")
    out = tmp_path / "review.html"
    got = CliRunner().invoke(main, ["review", "periodic", "--from", day, "--to", nxt, "-o",
                                    str(out), "--evidence-dir", str(evidence),
                                    "--state-dir", str(tmp_path / "st")])
    assert got.exit_code == 0, got.output
    assert "periodic review of 1 bundles" in got.output
    assert "MOTD-01" in out.read_text()
    pdf = tmp_path / "review.pdf"
    got = CliRunner().invoke(main, ["review", "periodic", "--from", day, "--to", nxt, "-o",
                                    str(pdf), "--evidence-dir", str(evidence),
                                    "--state-dir", str(tmp_path / "st")])
    assert got.exit_code == 0, got.output
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_a_bad_period_is_one_line_exit_2(tmp_path: Path) -> None:
    got = CliRunner().invoke(main, ["review", "periodic", "--from", "yesterday", "--to",
                                    "2026-01-01", "-o", str(tmp_path / "x.html")])
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "--from 'yesterday' is not a date" in got.output


EVENTS = [
    {"time": "2026-03-01T10:00:00.000000Z", "who": "jane.doe", "what": "run.start",
     "change_id": "CHG1", "run_id": "R1", "detail": "spec kvm"},
    {"time": "2026-03-02T10:00:00.000000Z", "who": "acct-pusher", "action": "push",
     "run_id": "R1", "outcome": "stored", "detail": "=HYPERLINK(\"http://x\")"},
    {"time": "2026-03-03T10:00:00.000000Z", "who": "Rita Reviewer", "what": "signature.reviewed",
     "change_id": "CHG1", "run_id": "R1", "detail": "<script>x</script>"},
    {"time": "damaged", "who": "?", "what": "approval.unreadable", "detail": "bad file"},
]


def test_audit_filters_by_date_who_action_and_change() -> None:
    def ids(**query: str) -> list[str]:
        return [r["action"] for r in review(EVENTS, AuditFilter.from_query(query))]

    # an event whose time cannot be read is kept by every date filter
    assert ids(since="2026-03-02", until="2026-03-03") == ["push", "approval.unreadable"]
    assert ids(who="rita") == ["signature.reviewed"]
    assert ids(action="push") == ["push"]
    assert ids(change="CHG1") == ["run.start", "signature.reviewed"]
    assert ids(change="R1") == ["run.start", "push", "signature.reviewed"]
    with pytest.raises(BadInputError, match="since 'monday' is not a date"):
        AuditFilter.from_query({"since": "monday"})


def test_audit_exports_csv_and_json() -> None:
    flt = AuditFilter.from_query({"change": "R1"})
    rows = review(EVENTS, flt)
    table = list(csv.reader(io.StringIO(export(rows, "csv", flt))))
    assert table[0][:3] == ["time", "who", "action"] and len(table) == 4
    assert table[2][7].startswith("'=HYPERLINK")  # a formula stays text in a spreadsheet
    doc = json.loads(export(rows, "json", flt))
    assert doc["schema"] == "vqual.audit-review/v1" and doc["filter"]["change"] == "R1"
    assert [e["action"] for e in doc["events"]] == ["run.start", "push", "signature.reviewed"]
    with pytest.raises(BadInputError):
        export(rows, "xml", flt)
