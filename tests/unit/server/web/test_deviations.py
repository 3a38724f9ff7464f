"""Deviation approval in the browser (VQ-82), through the real app on SQLite and PostgreSQL:
a controller pushes a change's deviations, an approver approves one by typing user id and
password again, the controller pulls the waiver back and it counts offline exactly as one
``vqual deviation approve`` wrote; the raiser, a reviewer and a second approval by the same
person are refused, and every step is audited."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from qualification.evidence.records import utc_now
from qualification.evidence.verify import WAIVER_TYPE
from qualification.review.deviations import approve_deviation, change_dir, deviation_state
from qualification.review.documents import open_document
from qualification.review.signed import load_trust
from qualification.server.deviation_files import pull_into, read_layout
from tests.unit.server.web.conftest import Web
from tests.unit.server.web.web_testlib import PASSWORD, add_person, csrf_of, login

CHANGE = "CHG0001234"
DEVIATIONS = f"""version: 1
change_id: {CHANGE}
deviations:
  - id: DEV-1
    test_id: NTP-01
    target: kvm01.lab
    justification: NTP server replaced next week
    expiry: 2099-01-01T00:00:00Z
    owner: Olga Owner
    raised_by: alan
  - id: DEV-2
    test_id: MOTD-01
    target: kvm01.lab
    justification: banner text pending legal review
    expiry: 2099-01-01T00:00:00Z
    owner: Olga Owner
"""


def write_deviations(state: Path, text: str = DEVIATIONS) -> None:
    folder = change_dir(state, CHANGE)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deviations.yaml").write_text(text, encoding="utf-8")


def push_body(state: Path, sites: list[str] | None = None) -> bytes:
    from qualification.review.deviations import load_deviations

    return json.dumps({"change_id": CHANGE, "sites": sites or [],
                       "deviations": [d.to_json() for d in load_deviations(state, CHANGE)],
                       "waivers": read_layout(state, CHANGE)}).encode()


def api(web: Web, method: str, path: str, role: str, body: bytes | None = None) -> Any:
    return web.client().request(method, f"/api/v1{path}", content=body, headers={
        "Authorization": f"Bearer {web.tokens[role]}", "Content-Type": "application/json"})


def approve(client: TestClient, dev: str, user: str, password: str = PASSWORD) -> Any:
    page = client.get(f"/deviations/{CHANGE}/{dev}")
    assert page.status_code == 200, page.text
    return client.post(f"/deviations/{CHANGE}/{dev}", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "user_id": user, "password": password,
        "comment": "accepted in the browser"})


@pytest.fixture
def pushed(web: Web) -> Web:
    add_person(web.st, web.server, "bert", "Bert Approver", ["approver"])
    write_deviations(web.st.state)
    got = api(web, "POST", "/deviations", "pusher", push_body(web.st.state))
    assert got.status_code == 200, got.text
    assert got.json()["deviations"] == ["DEV-1", "DEV-2"]
    return web


def test_a_deviation_approved_in_the_browser_counts_offline_after_a_pull(
        pushed: Web, tmp_path: Path) -> None:
    web = pushed
    browser = web.client()
    login(browser, "bert")
    listed = browser.get(f"/deviations?change={CHANGE}")
    assert "DEV-1" in listed.text and "unsigned" in listed.text
    assert approve(browser, "DEV-1", "bert").status_code == 303
    assert "approved" in browser.get(f"/deviations?change={CHANGE}").text

    got = api(web, "GET", f"/deviations/{CHANGE}", "reader")
    assert got.status_code == 200, got.text
    (waiver,) = got.json()["waivers"]
    lines = pull_into(web.st.state, CHANGE, got.json())
    assert any(line.startswith("DEV-1  NTP-01 on kvm01.lab  approved by Bert Approver")
               for line in lines), lines
    trust = load_trust(web.st.state)
    state = deviation_state(web.st.state, CHANGE, trust)
    assert state.refused == []
    covering = state.covering("NTP-01", "kvm01.lab", utc_now())
    assert covering is not None and covering.name == "Bert Approver"
    assert covering.file == f"deviations/{CHANGE}/waivers/{waiver['file']}"

    # The same document `vqual deviation approve` writes with a key file.
    cli = approve_deviation(web.st.state, CHANGE, "DEV-2", web.st.keys.approver, trust, "ok")
    ours = open_document(covering.envelope.encode(), WAIVER_TYPE, trust, "approver",
                          where="w").payload
    theirs = open_document(cli.envelope.encode(), WAIVER_TYPE, trust, "approver",
                          where="w").payload
    assert sorted(ours) == sorted(theirs)
    assert (ours["kind"], ours["meaning"], ours["change_id"]) == (
        theirs["kind"], theirs["meaning"], theirs["change_id"])
    assert [a[:3] for a in web.audit() if a[1].startswith("deviation.")] == [
        ("acct-pusher", "deviation.push", "ok"), ("bert", "deviation.approve", "ok"),
        ("acct-reader", "deviation.pull", "ok")]

    # Pushed back with the controller's own waiver: judged, and only the new one is added.
    again = api(web, "POST", "/deviations", "pusher", push_body(web.st.state))
    assert again.status_code == 200 and len(again.json()["waivers_added"]) == 1


def test_the_raiser_a_reviewer_and_a_second_approval_are_refused_and_audited(
        pushed: Web) -> None:
    web = pushed
    alan = web.client()
    login(alan, "alan")
    refused = approve(alan, "DEV-1", "alan")
    assert refused.status_code == 403
    assert "raised or owns deviation DEV-1 and may not approve it" in refused.text
    rita = web.client()
    login(rita, "rita")
    assert rita.get(f"/deviations/{CHANGE}/DEV-1").status_code == 403
    assert "DEV-1" in rita.get("/deviations").text  # a reviewer reads, but has no link
    assert f'href="/deviations/{CHANGE}/DEV-1"' not in rita.get("/deviations").text
    bert = web.client()
    login(bert, "bert")
    assert approve(bert, "DEV-1", "bert", "wrong password, surely").status_code == 403
    assert approve(bert, "DEV-1", "bert").status_code == 303
    page = bert.get(f"/deviations/{CHANGE}/DEV-1")
    assert 'id="sign-submit"' not in page.text and "<form" not in page.text.split('id="signing"')[1]
    # One line: who approved it when.
    assert re.search(r'id="approve-refusal">Bert Approver approved deviation DEV-1 already, at '
                     r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</p>', page.text), page.text
    again = bert.post(f"/deviations/{CHANGE}/DEV-1", follow_redirects=False, data={
        "csrf_token": csrf_of(bert.get("/deviations").text), "user_id": "bert",
        "password": PASSWORD})
    assert again.status_code == 409 and "already" in again.text
    rows = [a for a in web.audit() if a[1] in ("deviation.approve", "authorize")]
    assert [(a[0], a[1], a[2]) for a in rows] == [
        ("alan", "deviation.approve", "refused"), ("rita", "authorize", "refused"),
        ("bert", "deviation.approve", "refused"), ("bert", "deviation.approve", "ok"),
        ("bert", "deviation.approve", "refused")]
    assert "wrong password" in rows[2][3]
    assert len(api(web, "GET", f"/deviations/{CHANGE}", "reader").json()["waivers"]) == 1


def test_a_push_whose_waiver_does_not_hold_is_refused_and_audited(web: Web) -> None:
    write_deviations(web.st.state)
    trust = load_trust(web.st.state)
    approve_deviation(web.st.state, CHANGE, "DEV-2", web.st.keys.approver, trust, None)
    write_deviations(web.st.state, DEVIATIONS.replace("legal review", "a later review"))
    got = api(web, "POST", "/deviations", "pusher", push_body(web.st.state))
    assert got.status_code == 422
    assert "was edited after it was approved" in got.json()["error"]
    assert api(web, "POST", "/deviations", "reader", push_body(web.st.state)).status_code == 403
    for bad in (b"not json", json.dumps({"change_id": CHANGE, "deviations": [1]}).encode(),
                json.dumps({"change_id": "../x", "deviations": [{}]}).encode()):
        assert api(web, "POST", "/deviations", "pusher", bad).status_code == 422, bad
    assert api(web, "GET", f"/deviations/{CHANGE}", "reader").status_code == 404
    assert [a[1:3] for a in web.audit() if a[1] == "deviation.push"] == [
        ("deviation.push", "refused")] * 5
