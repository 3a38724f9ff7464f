"""Sealed runs whose recorded inventory places their hosts at sites (``vqual_site``), for the
per-site authorization and retention tests."""

from __future__ import annotations

from pathlib import Path

from qualification.evidence.bundle import BundleWriter
from qualification.evidence.canonical import canonical_bytes
from qualification.execution.recorder import records_as_dicts
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.verdict import overall, zero_counts
from tests.unit.evidence.evidence_testlib import CHANGE, check_result, planned, run_start_data
from tests.unit.server.server_testlib import ServerState


def site_run(st: ServerState, run_id: str, *sites: str) -> Path:
    """A sealed run (as :func:`tests.unit.evidence.test_verify_agreement.real_run`) whose
    ``inventory.json`` has one host at each of ``sites`` (none: hosts without a site)."""
    w = BundleWriter.create(st.evidence, CHANGE, run_id, st.keys.executor, "jane.doe")
    w.append("run.start", run_start_data(None))
    counts = zero_counts()
    for i, t in enumerate(planned()):
        data = check_result(w, t["test_id"], t["target"], i)
        counts[data["verdict"]] += 1
        w.append("check.result", data)
    hosts = {f"kvm0{i}.{site}": {"vqual_site": site} for i, site in enumerate(sites)}
    w.add_file("inventory.json", canonical_bytes({"hosts": hosts or {"kvm01.lab": {}}}))
    w.sync()
    recs = records_as_dicts(w.path)
    w.add_file("junit.xml", render_junit(recs).encode("utf-8"))
    w.add_file("report.html", render_report(recs).encode("utf-8"))
    w.seal(counts, len(planned()), len(planned()), overall(counts).value)
    return w.path
