"""The report of a lab run, as QA sees it: rendered by headless Chromium, read back as text."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_vqual
from tests.integration.reviewflow import add_person, executor, vqual_with_passphrase

pytestmark = pytest.mark.lab

XSS = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _Text(HTMLParser):
    """The page's visible text, and whether the DOM holds any script element."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="vqual-chromium-")
    try:
        return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `scripts/setup --lab`")
def test_a_lab_run_report_renders_in_chromium_with_its_summary_failure_matrix_and_signature(
    tmp_path: Path, lab: object
) -> None:
    from vqual_lab import manager

    # A file on kvm1 whose content is HTML-special: it must appear in the report as text.
    kvm = manager.component("kvm")
    kvm.exec(manager.context(), "kvm1", ["sh", "-c", f"echo '{XSS}' > /root/vqual-report.txt"])  # type: ignore[attr-defined]
    state = tmp_path / "state"
    executor(state)
    reviewer = add_person(state, "Rolf Reviewer", "rolf@example.com", "reviewer")
    inv = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "lab", inv)
    tests = [
        {"id": "IQ-RPT-001", "title": "The note file holds no markup", "protocol": "IQ",
         "requirements": ["URS-SEC-01"], "applies_to": ["kvm_host"], "risk": ["high", "medium", "low"],
         "check": "file_content", "params": {"path": "/root/vqual-report.txt", "regex": "script"},
         "expect": {"op": "absent"}, "acceptance": "no markup in the file"},
        {"id": "IQ-RPT-002", "title": "The OS is Debian", "protocol": "IQ",
         "requirements": ["URS-HV-02"], "applies_to": ["kvm_host"], "risk": ["high", "medium", "low"],
         "check": "os_release", "params": {"field": "ID"}, "expect": {"op": "equals", "value": "debian"},
         "acceptance": "Debian"},
    ]
    spec = tmp_path / "report.yaml"
    spec.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "report-check", "title": "report in a browser", "version": "1.0"},
        "requirements": ["URS-SEC-01", "URS-HV-02", "URS-AT-01"], "tests": tests}))
    done = run_vqual("qualify", "-i", str(inv), "-s", str(spec), "-c", "CHG0005001", "--limit", "kvm1",
                     "--evidence-dir", str(tmp_path / "ev"), "--json", state_dir=state)
    assert done.returncode == 1, done.stdout + done.stderr
    bundle = json.loads(done.stdout)["bundle"]
    signed = vqual_with_passphrase("sign", bundle, "--meaning", "reviewed", "--key", str(reviewer),
                                   state_dir=state)
    assert signed.returncode == 0, signed.stderr
    rendered = run_vqual("report", bundle, "--out", str(tmp_path / "view"), state_dir=state)
    assert rendered.returncode == 0, rendered.stderr
    page = (tmp_path / "view" / "report.html").resolve()

    shot = tmp_path / "report.png"
    taken = _chromium("--window-size=1280,4000", f"--screenshot={shot}", page.as_uri())
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", taken.stderr[-500:]
    assert shot.stat().st_size > 20_000, "a blank page is a few kB"

    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-500:]
    parser = _Text()
    parser.feed(dom.stdout)
    text = " ".join(" ".join(parser.parts).split())
    assert parser.scripts == 0, "the report carries no script, and no observed value became one"
    assert XSS in text, "the HTML-special observed value shows as text"
    for expected in ("CHG0005001", "IQ-RPT-001", "IQ-RPT-002", "URS-SEC-01", "Rolf Reviewer",
                     "reviewed"):
        assert expected in text, expected
    lowered = text.lower()
    assert "summary" in lowered and "traceability" in lowered and "fail" in lowered
    assert "not covered" in lowered, "URS-AT-01 is declared but no test covers it"
