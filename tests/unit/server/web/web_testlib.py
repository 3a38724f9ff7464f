"""People for the browser review's tests: accounts on the server, their keys signed into the
trust store by the test root (as a trust-admin would with ``vqual trust sign``) or not."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from qualification.evidence.bundle import BundleWriter
from qualification.execution.recorder import records_as_dicts
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.server.service import EvidenceServer
from qualification.server.web.accounts import add_user
from qualification.signing import TrustStore
from qualification.verdict import overall, zero_counts
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import CHANGE, check_result, run_start_data
from tests.unit.server.server_testlib import ServerState

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_person(st: ServerState, server: EvidenceServer, user_id: str, name: str,
               roles: list[str], *, trusted: bool = True, password: str = PASSWORD,
               sites: list[str] | None = None) -> str:
    """An account (of ``sites``; default every site); with ``trusted`` its key is in a
    root-signed trust version with the signing roles among ``roles``. Returns the key id."""
    new = add_user(server.engine, user_id, name, roles, password, sites)
    if trusted:
        trust = TrustStore.load(st.state / "trust.yaml")
        signing = [r for r in roles if r in ("reviewer", "approver")] or ["reviewer"]
        trust.add_key(public_key_pem=new.public_pem, name=name, identity=f"{user_id}@example.com",
                      roles=signing, valid_from=datetime(2020, 1, 1, tzinfo=UTC))
        trust.save()
        pin_state(st.state)
    return new.keyid


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(client: TestClient, user_id: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"user_id": user_id, "password": password,
                                       "csrf_token": csrf_of(page.text), "next": "/review/runs"},
                       follow_redirects=False)


#: What a hostile or broken target reports: a hostname and a file's content with markup.
HOSTILE_HOST = '<img src=x onerror="alert(1)">kvm09.lab'
HOSTILE_FILE = '</pre><script>alert("xss")</script>'


def hostile_run(st: ServerState, run_id: str) -> Path:
    """A sealed run whose one target's hostname and observed file content carry markup."""
    w = BundleWriter.create(st.evidence, CHANGE, run_id, st.keys.executor, "jane.doe")
    start = run_start_data()
    start["targets"] = [{"name": HOSTILE_HOST, "kinds": ["kvm_host"], "risk": "high",
                         "risk_reason": "LIMS"}]
    start["planned"] = [{"test_id": "KVM-01", "target": HOSTILE_HOST, "protocol": "IQ"}]
    w.append("run.start", start)
    data = check_result(w, "KVM-01", HOSTILE_HOST, 1)
    data["observed"] = {"server": "ntp1", "motd": HOSTILE_FILE}
    w.append("check.result", data)
    w.sync()
    recs = records_as_dicts(w.path)
    w.add_file("junit.xml", render_junit(recs).encode("utf-8"))
    w.add_file("report.html", render_report(recs).encode("utf-8"))
    counts = zero_counts()
    counts["pass"] = 1
    w.seal(counts, 1, 1, overall(counts).value)
    return w.path
