"""A clone run's summary shows the master's fingerprint against each clone's (VQ-68), from a
bundle written and sealed by the bundle writer with the records a clone run writes
(docs/clones.md: ``run.start`` ``clone``, each clone's ``fingerprint``, the
``clone_fingerprint`` results); the lab and the embedded clone tests make real ones
(tests/integration/test_clones_embedded.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from qualification.evidence.bundle import BundleWriter
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.reports.model import load_run
from qualification.reports.summary import clone_comparison, render_summary
from tests.unit.evidence.evidence_testlib import add_renderings, make_keys


def _fingerprint(subject: str, hostname: str) -> dict[str, Any]:
    body = {"schema": "vqual.fingerprint/v1", "subject": subject, "kind": "vm",
            "vm": {"vcpus": 1}, "guest": {"os": "debian"}, "identity": {"hostname": hostname},
            "generalised": {"packages": "ab" * 32}, "digests": {"files": {}}}
    return {**body, "digest": hashlib.sha256(canonical_bytes(body)).hexdigest()}


def _clone_run(tmp: Path) -> Path:
    keys = make_keys(tmp / "state")
    master = _fingerprint("master", "master")
    same, other = _fingerprint("clone-1", "master"), _fingerprint("clone-2", "<b>c2</b>")
    w = BundleWriter.create(tmp / "evidence", "CHG0000042", "20260301T100000Z-clones",
                            keys.executor, "jane.doe")
    planned = [{"test_id": "CL-FP-001", "target": t, "protocol": "OQ"}
               for t in ("clone-1", "clone-2")]
    w.append("run.start", {"mode": "clone", "planned": planned, "targets": [
        {"name": "clone-1", "kinds": ["vm"]}, {"name": "clone-2", "kinds": ["vm"]}],
        "clone": {"master_change_id": "CHG0000041", "master_run_id": "20260201T100000Z-m",
                  "master_seal": "cd" * 32,
                  "master_fingerprint": {"subject": "master", "digest": master["digest"]}}})
    for fp, verdict, observed in ((same, "pass", []),
                                  (other, "fail", ["identity.hostname: <b>c2</b>"])):
        w.append("fingerprint", fp)
        w.append("check.result", {
            "test_id": "CL-FP-001", "title": "clone as its master", "protocol": "OQ",
            "requirements": ["URS-CL-01"], "target": fp["subject"], "check": "clone_fingerprint",
            "method": "guest fingerprint", "expected": {"op": "eq", "value": []},
            "observed": observed, "verdict": verdict,
            "reason": None if verdict == "pass" else "1 difference from the master",
            "raw": None, "started": "2026-03-01T10:00:00.000000Z",
            "finished": "2026-03-01T10:00:01.000000Z", "duration_ms": 1000, "deviation": None})
    add_renderings(w)
    w.seal({"pass": 1, "fail": 1, "error": 0, "not-executed": 0, "waived": 0}, 2, 2, "fail")
    assert verify_bundle(w.path, keys.trust, workers=1).status == "valid"
    return w.path


def test_each_clone_against_the_master_fingerprint(tmp_path: Path) -> None:
    records = read_bundle(_clone_run(tmp_path)).records
    comparison = clone_comparison(load_run(records), records)
    assert comparison is not None
    rows = {c["subject"]: (c["digest"][:8], c["verdict"]["text"]) for c in comparison["clones"]}
    assert rows == {"clone-1": (_fingerprint("clone-1", "master")["digest"][:8], "PASS"),
                    "clone-2": (_fingerprint("clone-2", "<b>c2</b>")["digest"][:8], "FAIL")}
    assert comparison["master"] == "CHG0000041/20260201T100000Z-m"
    html = render_summary(records)
    section = html.split('<section id="clone">', 1)[1].split("</section>", 1)[0]
    assert comparison["digest"] in section and "identity.hostname: &lt;b&gt;c2&lt;/b&gt;" in section
    assert "<b>c2</b>" not in html
