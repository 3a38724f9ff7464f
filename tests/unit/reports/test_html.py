"""The HTML report, parsed with html.parser: sections, escaping, matrix, signatures."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser

import pytest

from qualification.errors import BadInputError
from qualification.reports.html import render_report
from tests.unit.reports.reports_testlib import (
    APPROVER,
    DECLARED,
    EXECUTOR,
    HCL_DIGEST,
    INVENTORY_DIGEST,
    PLANNED,
    REVIEWER,
    SEAL,
    SPEC_DIGEST,
    TARGETS,
    TRUST_DIGEST,
    XSS,
    RunRecords,
    qualification_run,
)

_VOID = {"meta", "br", "link", "img", "input", "hr", "col"}
_BREAKS = {"br", "dt", "dd", "p", "li", "div"}


class Doc(HTMLParser):
    """Collects elements, the text of each section, table rows and verdict labels."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.sections: dict[str, list[str]] = {}
        self.rows: list[dict] = []  # {"section", "class", "cells"}
        self.verdicts: list[tuple[str, str]] = []  # (css classes, text)
        self.style = ""
        self.title = ""
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {[t for t, _ in self.stack]}"

    def _section_ids(self) -> list[str]:
        return [a["id"] for t, a in self.stack if t == "section" and a.get("id")]

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag in _BREAKS:
            self.handle_data(" ")  # a line or box boundary separates words, as rendered
        if tag in _VOID:
            return
        self.stack.append((tag, attributes))
        if tag == "tr":
            ids = self._section_ids()
            self.rows.append(
                {"section": ids[0] if ids else None, "class": attributes.get("class"), "cells": []}
            )
        elif tag in ("td", "th") and self.rows:
            self.rows[-1]["cells"].append("")
        elif tag == "span" and "verdict" in (attributes.get("class") or "").split():
            self.verdicts.append((attributes["class"], ""))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        open_tag, _ = self.stack.pop()
        assert open_tag == tag, f"</{tag}> closes <{open_tag}>"

    def handle_data(self, data):
        for ident in self._section_ids():
            self.sections.setdefault(ident, []).append(data)
        tags = [t for t, _ in self.stack]
        if tags and tags[-1] == "style":
            self.style += data
        if tags and tags[-1] == "title":
            self.title += data
        if "tr" in tags and self.rows and self.rows[-1]["cells"]:
            self.rows[-1]["cells"][-1] += data
        if (
            tags
            and tags[-1] == "span"
            and self.verdicts
            and self.stack[-1][1].get("class", "").startswith("verdict")
        ):
            css, text = self.verdicts[-1]
            self.verdicts[-1] = (css, text + data)

    def text(self, section: str) -> str:
        return " ".join("".join(self.sections.get(section, [])).split())

    def table(self, section: str) -> list[list[str]]:
        return [
            [" ".join(c.split()) for c in r["cells"]] for r in self.rows if r["section"] == section
        ]


def _doc(records, **kwargs) -> Doc:
    return Doc(render_report(records, **kwargs))


def test_every_section_is_there_with_the_default_title(run):
    doc = _doc(run.records)
    ids = [a.get("id") for t, a in doc.elements if t == "section" and a.get("id")]
    assert ids == ["summary", "tests", "actions", "deviations", "traceability", "signatures"]
    assert doc.title == "Qualification report CHG0001234 / 20261126T030000Z-a1b2c3"
    assert _doc(run.records, title="IQ of cluster A").title == "IQ of cluster A"


def test_summary_says_what_was_qualified_by_whom_when_and_against_what(run):
    doc = _doc(run.records)
    facts = {row[0]: row[1] for row in doc.table("summary") if len(row) == 2}
    assert facts["Change id"] == "CHG0001234"
    assert facts["Initiator"] == "jane.doe@example.com"
    assert facts["Executor (key id)"] == EXECUTOR
    assert facts["Started (UTC)"] == "2026-11-26 03:00:01 UTC"
    end_time = run.records[-1]["time"][:19].replace("T", " ") + " UTC"
    assert facts["Ended (UTC)"] == end_time
    assert facts["Digest: spec"] == SPEC_DIGEST
    assert facts["Digest: data file hcl.yaml"] == HCL_DIGEST
    assert facts["Digest: inventory"] == INVENTORY_DIGEST
    assert facts["Digest: trust store"] == TRUST_DIGEST
    assert facts["Clock"] == "synchronised (chrony, offset 0.2 ms)"
    assert facts["Overall verdict"] == "FAIL"
    assert facts["Counts"] == "PASS: 2; FAIL: 1; ERROR: 1; NOT EXECUTED: 1; WAIVED: 1"
    assert facts["Release decision"] == "pending: no approval signature"
    assert "Verification" not in facts and "Seal digest (SHA-256 of the run.end line)" not in facts
    targets = [row for row in doc.table("summary") if len(row) == 4]
    assert targets[1:] == [
        ["kvm1", "host, hypervisor", "high", "carries LIMS (high)"],
        ["kvm2", "host, hypervisor", "high", "carries LIMS (high)"],
    ]


def test_verification_status_and_seal_appear_when_given(run):
    doc = _doc(
        run.records, verification={"status": "valid", "seal": SEAL, "trust_digest": TRUST_DIGEST}
    )
    facts = {row[0]: row[1] for row in doc.table("summary") if len(row) == 2}
    assert facts["Verification"] == "valid"
    assert facts["Seal digest (SHA-256 of the run.end line)"] == SEAL
    assert facts["Verification: trust_digest"] == TRUST_DIGEST


def test_tests_table_per_target_with_verdict_text_not_colour_alone(run):
    doc = _doc(run.records)
    headings = [a for t, a in doc.elements if t == "section" and a.get("class") == "target"]
    assert len(headings) == 2
    rows = [r for r in doc.table("tests") if r and r[0] != "Test"]
    assert rows[0] == [
        "IQ-SSH-01",
        "root login over SSH disabled",
        "URS-CL-01",
        "host.file /etc/ssh/sshd_config",
        "eq no",
        "no",
        "PASS",
        run.records[1]["data"]["started"][:19].replace("T", " ") + " UTC 42 ms",
    ]
    waived = next(r for r in rows if r[0] == "OQ-MIG-01")
    assert waived[4:7] == [
        "le 500 (path: downtime_ms)",
        '{"downtime_ms": 950}',
        "WAIVED (DEV-0042) downtime 950 ms > 500 ms",
    ]
    assert waived[7].endswith("3.10 s")
    assert [r[6] for r in rows] == [
        "PASS",
        "ERROR host unreachable: ssh timed out after 30 s",
        "WAIVED (DEV-0042) downtime 950 ms > 500 ms",
        "FAIL",
        "NOT EXECUTED the test driver has no DMI data",
        "PASS",
    ]
    for css, text in doc.verdicts:
        assert text.strip(), f"verdict shown by colour only: {css}"
        assert re.fullmatch(r"verdict v-(pass|fail|error|not-executed|waived|none)", css)


def test_hostile_observed_value_is_shown_as_text_only(run):
    html = render_report(run.records)
    doc = Doc(html)
    assert "script" not in [tag for tag, _ in doc.elements]
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS in doc.text("tests")


def test_hostile_text_in_every_field_is_escaped():
    run = qualification_run()
    run.records[0]["data"]["targets"][0]["risk_reason"] = XSS
    run.records[1]["data"]["title"] = XSS
    run.records[1]["data"]["method"] = XSS
    run.sign(XSS, "reviewed", REVIEWER, SEAL, ["reviewer"])
    html = render_report(
        run.records, verification={"status": XSS}, spec_requirements={"URS-CL-01": XSS}, title=XSS
    )
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;") >= 7


def test_actions_show_state_before_and_after(run):
    rows = _doc(run.records).table("actions")
    assert rows[1][:5] == [
        "live migration of vm-lims-01",
        "kvm1",
        '{"host": "kvm1", "state": "running"}',
        '{"host": "kvm2", "state": "running"}',
        "PASS",
    ]


def test_deviations_list_the_waiver_or_say_none(run):
    doc = _doc(run.records)
    assert doc.table("deviations")[1][:4] == ["DEV-0042", "waived result", "OQ-MIG-01", "kvm1"]
    clean = qualification_run()
    clean.records = [
        r
        for r in clean.records
        if r["data"].get("verdict") != "waived" or r["kind"] != "check.result"
    ]
    assert _doc(clean.records).text("deviations") == "Deviations none"


def test_matrix_marks_declared_requirements_no_executed_test_covers(run):
    doc = _doc(
        run.records,
        spec_requirements={
            "URS-CL-01": "All hosts of a cluster are identical.",
            "URS-HCL-01": "Hardware is on the HCL.",
            "URS-AT-01": "Activities are logged automatically.",
            "URS-REG-01": "Part 11 and Annex 11 are met.",
        },
    )
    rows = {
        r["cells"][0].split()[0]: {
            "class": r["class"],
            "cells": [" ".join(c.split()) for c in r["cells"]],
        }
        for r in doc.rows
        if r["section"] == "traceability" and r["cells"] and r["cells"][0].startswith("URS")
    }
    assert rows["URS-AT-01"]["class"] == "not-covered"
    assert rows["URS-AT-01"]["cells"][1:] == ["none", "no test", "none", "NOT COVERED"]
    assert rows["URS-REG-01"]["class"] == "not-covered"
    assert rows["URS-REG-01"]["cells"][4] == "NOT COVERED"
    cl = rows["URS-CL-01"]
    assert cl["class"] == "covered"
    assert "All hosts of a cluster are identical." in cl["cells"][0]
    assert cl["cells"][1] == "T"
    assert " ".join(cl["cells"][2].split()) == (
        "IQ-SSH-01 on kvm1: PASS OQ-MIG-01 on kvm1: WAIVED (DEV-0042) IQ-SSH-01 on kvm2: FAIL"
    )
    assert cl["cells"][3:] == ["DEV-0042", "FAIL"]
    assert "not declared by the spec" in rows["URS-AT-02"]["cells"][0]
    assert "not covered by an executed test: 2" in doc.text("traceability")


def test_matrix_falls_back_to_the_requirements_of_run_start(run):
    doc = _doc(run.records)
    ids = [r[0].split()[0] for r in doc.table("traceability")[1:]]
    assert ids == DECLARED + ["URS-AT-02"]


def test_unsigned_run_has_an_empty_not_signed_block(run):
    doc = _doc(run.records)
    blocks = [a for t, a in doc.elements if t == "div" and "signature" in a.get("class", "")]
    assert [b["class"] for b in blocks] == ["signature empty"]
    assert doc.text("signatures").startswith("Signatures not signed")


def test_signature_blocks_show_name_time_meaning_and_key(run):
    run.sign("Rita Reviewer", "reviewed", REVIEWER, SEAL, ["reviewer"])
    run.sign("Alex Approver", "approved", APPROVER, "f" * 64, ["approver"])
    doc = _doc(run.records, verification={"status": "valid", "seal": SEAL})
    text = doc.text("signatures")
    assert "not signed" not in text
    reviewed_at = run.records[-2]["time"][:19].replace("T", " ") + " UTC"
    assert (
        f"Printed name Rita Reviewer Meaning reviewed Date and time {reviewed_at} "
        f"Key id {REVIEWER} Roles reviewer Signs seal {SEAL} (this run's seal)"
    ) in text
    assert f"Signs seal {'f' * 64} (NOT this run's seal)" in text
    facts = {row[0]: row[1] for row in doc.table("summary") if len(row) == 2}
    approved_at = run.records[-1]["time"][:19].replace("T", " ") + " UTC"
    assert facts["Release decision"] == f"approved by Alex Approver at {approved_at}"


def test_no_scripts_and_no_external_resources(run):
    run.sign("Rita Reviewer", "reviewed", REVIEWER, SEAL, ["reviewer"])
    html = render_report(run.records, verification={"status": "valid", "seal": SEAL})
    doc = Doc(html)
    tags = {tag for tag, _ in doc.elements}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "a"}
    for tag, attrs in doc.elements:
        assert not {"src", "href", "action"} & set(attrs), tag
        assert not any(k.startswith("on") for k in attrs), tag
    assert "url(" not in doc.style and "@import" not in doc.style
    assert not re.search(
        r"(https?:)?//[a-z0-9]", html.replace("<!DOCTYPE html>", ""), re.IGNORECASE
    )


def test_print_stylesheet_pages_a4_with_change_id_and_page_x_of_y(run):
    html = render_report(run.records)
    doc = Doc(html)
    page = re.search(r"@page\s*{(.*?)\n}", doc.style, re.DOTALL).group(1)
    assert "size: A4" in page
    assert '"page " counter(page) " of " counter(pages)' in page
    assert "string(change-id)" in page
    assert re.search(r"\.change-id\s*{[^}]*string-set: change-id content\(\)", doc.style)
    assert re.search(r"tr[^{]*{[^}]*break-inside: avoid", doc.style)
    # The page header takes the change id from the one element that sets the string.
    assert re.findall(r'<span class="change-id">([^<]*)</span>', html) == ["CHG0001234"]


def test_same_inputs_give_the_same_bytes(run):
    run.sign("Rita Reviewer", "reviewed", REVIEWER, SEAL, ["reviewer"])
    kwargs = {"verification": {"status": "valid", "seal": SEAL}, "title": "IQ"}
    first = render_report(run.records, **kwargs)
    reordered = [{k: copy.deepcopy(r[k]) for k in reversed(list(r))} for r in run.records]
    assert render_report(run.records, **kwargs) == first
    assert render_report(reordered, **kwargs) == first


def test_unfinished_run_names_the_tests_without_result():
    run = qualification_run(finish=False, ntp=False)
    doc = _doc(run.records)
    assert "IQ-NTP-03 on kvm2: not executed: run did not finish" in doc.text("summary")
    assert "(last record; no run.end among the records rendered)" in doc.text("summary")
    ntp = next(r for r in doc.table("tests") if r[0] == "IQ-NTP-03")
    assert ntp[5:7] == ["(no result)", "ERROR not executed: run did not finish"]


def test_long_observed_values_are_cut_with_a_note():
    run = qualification_run()
    run.records[1]["data"]["observed"] = "x" * 5000
    row = next(r for r in _doc(run.records).table("tests") if r[0] == "IQ-SSH-01")
    assert row[5] == "x" * 2000 + " … (3000 more characters in the record)"


def test_records_without_run_start_are_refused(run):
    with pytest.raises(BadInputError, match="run.start"):
        render_report(run.records[1:])


def test_raw_output_is_referenced_by_file_and_digest_or_record():
    run = RunRecords()
    run.start(TARGETS[:1], PLANNED[:2], ["URS-CL-01"])
    digest = "ab" * 32
    run.result("IQ-SSH-01", "kvm1", "pass", "no", raw="PermitRootLogin no\n")
    run.result(
        "IQ-HCL-02", "kvm1", "pass", "R750", raw={"sha256": digest, "file": f"raw/{digest}.txt"}
    )
    rows = _doc(run.records).table("tests")
    assert (
        rows[1][3] == "host.file /etc/ssh/sshd_config raw output: inline in record seq 1 (19 bytes)"
    )
    assert rows[2][3].endswith(f"raw output: raw/{digest}.txt (sha256 {digest})")


def test_waived_and_passed_results_make_an_unsealed_run_pass():
    # The copy sealed with the run is rendered before run.end exists.
    run = RunRecords()
    run.start(TARGETS[:1], PLANNED[:1] + PLANNED[2:3], ["URS-CL-01"])
    run.result("IQ-SSH-01", "kvm1", "pass", "no", requirements=("URS-CL-01",))
    run.result(
        "OQ-MIG-01",
        "kvm1",
        "waived",
        950,
        protocol="OQ",
        deviation="DEV-9",
        requirements=("URS-CL-01",),
    )
    doc = _doc(run.records)
    facts = {row[0]: row[1] for row in doc.table("summary") if len(row) == 2}
    assert facts["Overall verdict"] == "PASS"
    assert facts["Counts"] == "PASS: 1; FAIL: 0; ERROR: 0; NOT EXECUTED: 0; WAIVED: 1"
    # The requirement's verdict is the waived test's, naming the deviation that waived it.
    (row,) = [r for r in doc.table("traceability") if r[0].startswith("URS-CL-01")]
    assert [" ".join(c.split()) for c in row[3:]] == ["DEV-9", "WAIVED (DEV-9)"]


def test_clone_and_patch_runs_name_what_they_rest_on(run):
    """A reviewer sees the master bundle and fingerprint a clone run was compared with, and
    the change file and plan a rolling patch ran; a plain run shows neither."""
    plain = {row[0] for row in _doc(run.records).table("summary") if len(row) == 2}
    assert not any("master" in label or "plan" in label for label in plain)

    records = copy.deepcopy(run.records)
    records[0]["data"]["clone"] = {
        "master_change_id": "CHG0000100", "master_run_id": "20261120T080000Z-m1m2m3",
        "master_seal": "ab" * 32,
        "master_fingerprint": {"subject": "master", "digest": "cd" * 32},
    }
    records[0]["data"]["patch"] = {
        "change": {"path": "specs/changes/lab.yaml", "digest": "ef" * 32},
        "cluster": "lab-kvm", "plan": {"digest": "12" * 32}, "resumed_from": "R-crashed",
    }
    facts = {row[0]: row[1] for row in _doc(records).table("summary") if len(row) == 2}
    assert facts["Digest: master bundle CHG0000100/20261120T080000Z-m1m2m3 (seal)"] == "ab" * 32
    assert facts["Digest: master fingerprint of master"] == "cd" * 32
    assert facts["Digest: change file specs/changes/lab.yaml"] == "ef" * 32
    assert facts["Digest: rolling-patch plan of cluster lab-kvm"] == "12" * 32
