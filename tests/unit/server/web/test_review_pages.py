"""The review pages (VQ-68, VQ-69, VQ-70) through the real app (Starlette's TestClient), on
SQLite and PostgreSQL: a reviewer or approver reads; the list filters and shows each run's
verification, chain, log status and approvals; target data stays text."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from qualification.server.app import build_app
from qualification.server.files import pack
from qualification.server.service import EvidenceServer
from qualification.server.web import WebSettings
from tests.unit.reports.review_testlib import HOSTILE_HOST, hostile_run, patch_run
from tests.unit.server.server_testlib import ServerState, start_server
from tests.unit.server.web.web_testlib import add_person, login


@dataclass
class Review:
    st: ServerState
    server: EvidenceServer
    hostile: Path
    patch: Path

    def client(self, user: str | None = "rita") -> TestClient:
        client = TestClient(build_app(self.server, WebSettings()), base_url="https://vqual.test")
        if user is not None:
            assert login(client, user).status_code == 303
        return client


@pytest.fixture
def review(st: ServerState, db_url: str | None) -> Iterator[Review]:
    hostile = hostile_run(st.evidence, st.keys, state=st.state)
    # its executor key joins this state's trust store, signed by the test root
    patch = patch_run(st.state.parent, pin=True)
    server, tokens = start_server(st, db_url)
    add_person(st, server, "rita", "Rita Reviewer", ["reviewer"])
    add_person(st, server, "alan", "Alan Approver", ["approver"])
    add_person(st, server, "adam", "Adam Admin", ["admin"], trusted=False)
    app = TestClient(build_app(server, WebSettings()), base_url="https://vqual.test")
    for bundle in (hostile, patch):
        got = app.post("/api/v1/runs", content=pack(bundle), headers={
            "Content-Type": "application/x-tar", "Authorization": f"Bearer {tokens['pusher']}"})
        assert got.status_code == 201, got.text
    yield Review(st, server, hostile, patch)
    server.close()


def _rows(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('<tr data-run-id="')[1:]]


def test_the_list_filters_and_shows_statuses(review: Review) -> None:
    client = review.client()
    page = client.get("/review/runs").text
    assert sorted(_rows(page)) == sorted([review.hostile.name, review.patch.name])
    assert page.count("verified when pushed") == 2 and page.count(">intact<") == 2
    assert "logged (1 entries), in checkpoint" in page and "none yet" in page
    assert "<script" not in page and "&lt;script&gt;" in page
    assert _rows(client.get("/review/runs", params={"host": HOSTILE_HOST}).text) == [
        review.hostile.name]
    assert _rows(client.get("/review/runs", params={"cluster": "c1"}).text) == [
        review.patch.name]
    assert _rows(client.get("/review/runs", params={"verdict": "fail"}).text) == [
        review.hostile.name]
    assert _rows(client.get("/review/runs", params={"change": "CHG0000777"}).text) == [
        review.patch.name]
    assert _rows(client.get("/review/runs", params={"from": "2099-01-01"}).text) == []
    bad = client.get("/review/runs", params={"from": "soon"})
    assert bad.status_code == 422 and "from &#39;soon&#39; is not a date" in bad.text


def test_the_summary_page_shows_the_first_screen_and_escapes(review: Review) -> None:
    page = review.client("alan").get(f"/review/runs/{review.hostile.name}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    text = page.text
    assert "<script" not in text and "<img" not in text
    assert "content differs: &lt;script&gt;" in text and "DEV-0007" in text
    assert 'id="verdict">FAIL<' in text and "chain: <strong>intact</strong>" in text
    assert 'id="sign-approved"' in text and 'id="sign-reviewed"' not in text
    assert review.client().get("/review/runs/NOPE").status_code == 404
    sealed = review.client().get(f"/review/runs/{review.hostile.name}/report.html")
    assert sealed.content == (review.hostile / "report.html").read_bytes()
    assert "script-src" not in sealed.headers["content-security-policy"]
    assert sealed.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_timeline_page_draws_the_patch(review: Review) -> None:
    page = review.client().get(f"/review/runs/{review.patch.name}/timeline").text
    assert "<svg" in page and page.count('class="step"') == 22
    assert 'data-host="h2"' in page


def test_a_store_edit_shows_as_a_chain_mismatch(review: Review) -> None:
    stored = review.server.store / "CHG0000777" / review.patch.name / "records.jsonl"
    stored.write_bytes(stored.read_bytes() + b"\n")
    page = review.client().get("/review/runs", params={"change": "CHG0000777"}).text
    assert "MISMATCH; unreadable: records.jsonl line" in page
    summary = review.client().get(f"/review/runs/{review.patch.name}")
    assert summary.status_code == 409 and "cannot be read" in summary.text


def test_the_audit_review_filters_and_exports(review: Review) -> None:
    client = review.client()
    review.client("alan")  # a second login
    page = client.get("/review/audit", params={"who": "alan", "action": "login"}).text
    assert page.count("<td>alan</td>") == 1
    got = client.get("/review/audit", params={"action": "push", "export": "csv"})
    assert got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0][0] == "time" and len(rows) == 3
    got = client.get("/review/audit", params={"change": review.patch.name, "export": "json"})
    doc = json.loads(got.text)
    assert {e["run_id"] for e in doc["events"]} == {review.patch.name}
    assert client.get("/review/audit", params={"export": "xml"}).status_code == 422
    assert any(r["action"] == "audit.export" for r in review.server.audit_rows())


def test_the_periodic_review_as_page_and_pdf(review: Review) -> None:
    client = review.client()
    page = client.get("/review/periodic").text
    assert "Periodic review" in page and "MOTD-01" in page and "<script" not in page
    assert "deviation raised" not in page or "open" in page
    pdf = client.get("/review/periodic.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert client.get("/review/periodic", params={"from": "2026-02-01",
                                                 "to": "2026-01-01"}).status_code == 422


def test_only_reviewers_and_approvers_read(review: Review) -> None:
    anonymous = review.client(None).get("/review/runs", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    admin = review.client("adam").get(f"/review/runs/{review.hostile.name}")
    assert admin.status_code == 403 and "neither the reviewer nor the approver" in admin.text
    assert any(r["who"] == "adam" and r["outcome"] == "refused"
               for r in review.server.audit_rows())
