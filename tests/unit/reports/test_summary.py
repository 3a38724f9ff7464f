"""The run summary for the browser (VQ-68): first screen content, escaping of what a target
reported, and the sections below it, from real sealed bundles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.reports.model import load_run
from qualification.reports.summary import first_screen, render_summary, render_summary_fragment
from tests.unit.evidence.evidence_testlib import Keys, make_keys
from tests.unit.reports.review_testlib import (
    HOSTILE_FILE,
    HOSTILE_HOST,
    REQUIREMENT_TEXT,
    hostile_run,
)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    keys: Keys = make_keys(tmp_path / "state")
    path = hostile_run(tmp_path / "evidence", keys, state=tmp_path / "state")
    assert verify_bundle(path, keys.trust, workers=1).status == "valid"
    return path


def _first_screen(html: str) -> str:
    """The part of the page before the per-test table: what the first screen shows."""
    return html.split('<section id="tests">', 1)[0]


def test_no_markup_from_the_target_reaches_the_page(bundle: Path) -> None:
    html = render_summary(read_bundle(bundle).records)
    assert "<script" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "<img" not in html
    assert "&lt;script&gt;alert(&#34;host&#34;)&lt;/script&gt;.lab" in html
    assert "&lt;script&gt;alert(&#34;file&#34;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#34;reason&#34;)&lt;/script&gt;" in html


def test_the_first_screen_names_verdict_counts_each_failure_with_its_reason_waived_missing(
    bundle: Path,
) -> None:
    html = render_summary(read_bundle(bundle).records)
    first = _first_screen(html)
    assert re.search(r'id="verdict">FAIL<', first)
    for label in ("PASS 1", "FAIL 1", "ERROR 1", "WAIVED 1", "MISSING 1", "planned 5"):
        assert label in first, label
    failures = first.split('<section id="failures">', 1)[1].split("</section>", 1)[0]
    assert failures.count('class="failure"') == 2
    assert "content differs: &lt;script&gt;" in failures
    assert "host unreachable: ssh timed out" in failures
    assert "expected eq Authorised use" in failures
    waived = first.split('<section id="waived">', 1)[1].split("</section>", 1)[0]
    assert "NTP-01" in waived and "DEV-0007" in waived
    missing = first.split('<section id="missing">', 1)[1].split("</section>", 1)[0]
    assert "HCL-01" in missing and "no result was recorded" in missing
    assert missing.count('class="missing"') == 1


def test_below_the_first_screen_tests_matrix_with_texts_deviations_signatures(
    bundle: Path,
) -> None:
    html = render_summary(read_bundle(bundle).records)
    rest = html.split('<section id="tests">', 1)[1]
    assert rest.count('<tr data-test-id=') == 5
    # The planned test without a result says MISSING in the table too, as the chips count it.
    hcl = rest.split('<tr data-test-id="HCL-01"', 1)[1].split("</tr>", 1)[0]
    assert ">MISSING<" in hcl and "ERROR" not in hcl
    matrix = rest.split('<section id="matrix">', 1)[1].split("</section>", 1)[0]
    assert "URS-NTP-01" in matrix and "site&#39;s NTP servers" in matrix
    assert REQUIREMENT_TEXT.split("'")[0] in matrix
    assert "DEV-0007" in rest.split('<section id="deviations">', 1)[1]
    assert "No signatures yet." in rest


def test_the_first_screen_lists_at_most_its_limit_and_says_how_many_more(bundle: Path) -> None:
    run = load_run(read_bundle(bundle).records)
    screen = first_screen(run)
    assert [f["id"] for f in screen["failures"]] == ["MOTD-01", "NTP-01"]
    assert screen["failures"][0]["target"] == HOSTILE_HOST
    assert HOSTILE_FILE.splitlines()[0] in screen["failures"][0]["observed"]


def test_the_fragment_has_no_document_around_it(bundle: Path) -> None:
    fragment = str(render_summary_fragment(read_bundle(bundle).records,
                                           statuses=[("chain", "intact <b>")]))
    assert not fragment.lstrip().startswith("<!DOCTYPE")
    assert "chain: <strong>intact &lt;b&gt;</strong>" in fragment
