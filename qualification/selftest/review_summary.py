"""OQ self check of the run summary QA reads in the browser (VQ-68): what a target reported is
shown as text, never as markup, and each failed test is listed with its reason on the first
screen."""

from __future__ import annotations

from typing import Any

from qualification.reports.summary import render_summary
from qualification.selftest.base import Outcome, SelfCheck

_HOST = '<script>alert("host")</script>.example'
_FILE = '<script>alert("file")</script><img src=x onerror=alert(1)>'
_REASON = 'content differs: <b onmouseover="alert(1)">'


def _records() -> list[dict[str, Any]]:
    """A run's decoded records with hostile target data: one pass, one failure."""
    common = {"v": 2, "change_id": "CHG-SELFTEST", "run_id": "R-SELFTEST", "actor": "selftest",
              "initiator": "selftest", "time": "2026-01-01T00:00:00.000000Z"}
    result = {"title": "motd as approved", "protocol": "OQ", "requirements": ["URS-01"],
              "target": _HOST, "check": "equals", "method": "host.file /etc/motd",
              "expected": {"op": "eq", "value": "Authorised use"}, "raw": None,
              "started": "2026-01-01T00:00:00.000000Z", "duration_ms": 1,
              "finished": "2026-01-01T00:00:00.001000Z", "deviation": None}
    return [
        {**common, "seq": 0, "kind": "run.start", "data": {
            "mode": "qualify", "targets": [{"name": _HOST, "kinds": ["host"]}],
            "planned": [{"test_id": t, "target": _HOST, "protocol": "OQ"}
                        for t in ("MOTD-01", "MOTD-02")]}},
        {**common, "seq": 1, "kind": "check.result", "data": {
            **result, "test_id": "MOTD-01", "observed": "Authorised use", "verdict": "pass",
            "reason": None}},
        {**common, "seq": 2, "kind": "check.result", "data": {
            **result, "test_id": "MOTD-02", "observed": _FILE, "verdict": "fail",
            "reason": _REASON}},
    ]


def summary_escapes() -> Outcome:
    page = render_summary(_records())
    first = page.split('<section id="tests">', 1)[0]
    failures = first.split('<section id="failures">', 1)[-1].split("</section>", 1)[0]
    got = {
        "markup from the target": [m for m in ("<script", "<img", "<b ") if m in page],
        "failure listed with its reason": "MOTD-02" in failures
        and "content differs: &lt;b onmouseover=&#34;alert(1)&#34;&gt;" in failures,
        "hostname shown as text": "&lt;script&gt;alert(&#34;host&#34;)&lt;/script&gt;.example"
        in failures,
    }
    ok = got == _WANT
    return Outcome(ok, got, None if ok else f"expected {_WANT}")


_WANT: dict[str, Any] = {"markup from the target": [], "failure listed with its reason": True,
                         "hostname shown as text": True}


def review_checks() -> list[SelfCheck]:
    """OQ: the browser summary escapes hostile target data and names each failure's reason."""
    return [
        SelfCheck(
            "ST-OQ-29",
            "the run summary shows a target's hostname and file content as text and lists "
            "each failed test with its reason on the first screen",
            "OQ",
            "VQ-68",
            "qualification.reports.summary.render_summary",
            {"op": "equals", "value": _WANT},
            summary_escapes,
        ),
    ]
