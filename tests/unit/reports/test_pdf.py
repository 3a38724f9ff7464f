"""PDF/A-3b from the HTML report, through WeasyPrint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zlib

import pytest

from qualification.errors import BadInputError
from qualification.reports.html import render_pdf, render_report
from tests.unit.reports.reports_testlib import REVIEWER, SEAL, qualification_run


@pytest.fixture(scope="module")
def pdf() -> bytes:
    """One rendering shared by the tests below (WeasyPrint takes seconds)."""
    run = qualification_run()
    run.sign("Rita Reviewer", "reviewed", REVIEWER, SEAL, ["reviewer"])
    return render_pdf(render_report(run.records, verification={"status": "valid", "seal": SEAL}))


def _streams(pdf: bytes) -> list[bytes]:
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            out.append(zlib.decompress(match.group(1)))
        except zlib.error:
            out.append(match.group(1))
    return out


def test_pdf_declares_pdf_a_3b_in_its_metadata(pdf):
    assert pdf.startswith(b"%PDF-")
    xmp = next(s for s in _streams(pdf) if b"pdfaid" in s)
    assert re.search(rb"pdfaid:part[^0-9]{0,3}3", xmp)
    assert re.search(rb"pdfaid:conformance[^A-Z]{0,3}B", xmp)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext (poppler-utils)")
def test_pdf_text_has_page_headers_and_the_report(pdf, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    pages = text.split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        header = page.strip().splitlines()[0]
        assert "Change CHG0001234" in header
        assert f"page {number} of {len(pages)}" in header
    flat = " ".join(text.split())
    assert "Traceability matrix" in flat
    assert "NOT COVERED" in flat
    assert "Printed name Rita Reviewer" in flat
    # The hostile observed value is printed as text (wrapped across lines in its cell).
    assert "<script>aler" in flat


def test_without_weasyprint_pdf_output_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import now raises ImportError
    with pytest.raises(BadInputError, match=r"PDF output needs weasyprint.*: pip install 'vqual\[pdf\]'"):
        render_pdf("<html></html>")
