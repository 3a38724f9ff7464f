"""Per-site visibility in the browser (VQ-83), SQLite and PostgreSQL: with sites configured, a
person of one site sees and acts on only that site's runs and deviations in every page, listing,
summary, timeline, sealed report, audit view, periodic review and signing route; another site's
run answers 404 as a run not held would, and each refusal is in the audit trail. A person of
every site sees both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from qualification.server.app import build_app
from qualification.server.files import pack
from qualification.server.service import EvidenceServer
from qualification.server.settings import Settings
from qualification.server.tokens import create_token
from qualification.server.web import WebSettings
from tests.unit.server.server_testlib import ServerState, start_server
from tests.unit.server.sites_testlib import site_run
from tests.unit.server.web.web_testlib import PASSWORD, add_person, csrf_of, login

BASEL, VISP = "20260301T100000Z-basel1", "20260301T110000Z-visp01"


@dataclass
class Sited:
    server: EvidenceServer
    tokens: dict[str, str]

    def client(self) -> TestClient:
        return TestClient(build_app(self.server, WebSettings()), base_url="https://vqual.test")

    def api(self, method: str, path: str, token: str, body: bytes, kind: str) -> Any:
        return self.client().request(method, f"/api/v1{path}", content=body, headers={
            "Authorization": f"Bearer {self.tokens[token]}", "Content-Type": kind})

    def refusals(self, who: str) -> list[str]:
        return [r["detail"] for r in self.server.audit_rows()
                if r["who"] == who and r["outcome"] == "refused"]


def _deviations(change: str, site: str) -> bytes:
    dev = {"id": "DEV-1", "test_id": "NTP-01", "target": f"kvm00.{site}",
           "justification": "replaced next week", "expiry": "2099-01-01T00:00:00.000000Z",
           "owner": "Olga Owner"}
    return json.dumps({"change_id": change, "sites": [site], "deviations": [dev]}).encode()


@pytest.fixture
def sited(st: ServerState, db_url: str | None) -> Iterator[Sited]:
    server, tokens = start_server(st, db_url)
    server.settings = Settings(sites=("basel", "visp"))
    for name, role, sites in (("hq-ci", "pusher", ("*",)), ("basel-qa", "reader", ("basel",))):
        tokens[name] = create_token(server.engine, name, role, sites)
    add_person(st, server, "bea", "Bea Basel", ["reviewer", "approver"], sites=["basel"])
    add_person(st, server, "hq", "Hal Quarters", ["reviewer"], sites=["*"])
    out = Sited(server, tokens)
    for run, site in ((BASEL, "basel"), (VISP, "visp")):
        got = out.api("POST", "/runs", "hq-ci", pack(site_run(st, run, site)),
                      "application/x-tar")
        assert got.status_code == 201, got.text
    for change, site in (("CHG-BASEL", "basel"), ("CHG-VISP", "visp")):
        got = out.api("POST", "/deviations", "hq-ci", _deviations(change, site),
                      "application/json")
        assert got.status_code == 200, got.text
    yield out
    server.close()


def test_a_person_of_one_site_sees_and_acts_only_on_its_runs(sited: Sited) -> None:
    bea = sited.client()
    login(bea, "bea")
    listing = bea.get("/review/runs").text
    assert BASEL in listing and VISP not in listing
    assert bea.get(f"/review/runs/{BASEL}").status_code == 200
    for path in (f"/review/runs/{VISP}", f"/review/runs/{VISP}/timeline",
                 f"/review/runs/{VISP}/report.html", f"/runs/{VISP}/sign?meaning=reviewed"):
        assert bea.get(path).status_code == 404, path
    token = csrf_of(bea.get(f"/review/runs/{BASEL}").text)
    signed = bea.post(f"/runs/{VISP}/sign?meaning=reviewed", follow_redirects=False, data={
        "csrf_token": token, "user_id": "bea", "password": PASSWORD})
    assert signed.status_code == 404
    assert sum("held for your sites" in d for d in sited.refusals("bea")) == 5

    periodic = bea.get("/review/periodic?from=2000-01-01&to=2100-01-01").text
    assert BASEL in periodic and VISP not in periodic
    audit = json.loads(bea.get("/review/audit?export=json").text)["events"]
    shown = {(r["who"], r["run_id"]) for r in audit}
    assert ("hq-ci", BASEL) in shown and ("hq-ci", VISP) not in shown
    assert {who for who, run in shown if not run} <= {"bea"}
    deviations = bea.get("/deviations").text
    assert "CHG-BASEL" in deviations and "CHG-VISP" not in deviations
    assert bea.get("/deviations/CHG-VISP/DEV-1").status_code == 404
    assert bea.get("/deviations/CHG-BASEL/DEV-1").status_code == 200

    hq = sited.client()
    login(hq, "hq")
    listing = hq.get("/review/runs").text
    assert BASEL in listing and VISP in listing
    assert hq.get(f"/review/runs/{VISP}").status_code == 200
    assert "CHG-VISP" in hq.get("/deviations").text


def test_deviations_of_another_site_are_not_pulled(sited: Sited) -> None:
    assert sited.api("GET", "/deviations/CHG-BASEL", "basel-qa", b"", "").status_code == 200
    refused = sited.api("GET", "/deviations/CHG-VISP", "basel-qa", b"", "")
    assert refused.status_code == 403
    assert "may not pull deviations of change CHG-VISP" in refused.json()["error"]
    assert any("CHG-VISP" in d for d in sited.refusals("basel-qa"))
