"""The browser review's defences, each tried as an attack through the real app (SQLite and
PostgreSQL): every refusal leaves the bundle as it was and is in the audit table."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from starlette.testclient import TestClient

from qualification.evidence.reader import read_bundle
from qualification.server import db
from qualification.server.app import web_routes
from qualification.timeutil import utc_now, utc_text
from tests.unit.server.web.conftest import RUN, Web
from tests.unit.server.web.web_testlib import (
    HOSTILE_FILE,
    HOSTILE_HOST,
    PASSWORD,
    csrf_of,
    hostile_run,
    login,
)

SIGN = f"/runs/{RUN}/sign"


def _signatures(web: Web) -> list[str]:
    bundle = web.server.store / "CHG0001234" / RUN
    return [str(s.data["meaning"]) for s in read_bundle(bundle).signatures]


def _sign(client: TestClient, meaning: str, user: str, password: str = PASSWORD,
          csrf: str | None = None) -> object:
    page = client.get(f"{SIGN}?meaning={meaning}")
    token = csrf if csrf is not None else csrf_of(page.text)
    return client.post(f"{SIGN}?meaning={meaning}", follow_redirects=False, data={
        "csrf_token": token, "user_id": user, "password": password, "comment": "checked"})


def test_every_page_needs_a_session(web: Web) -> None:
    client = web.client()
    open_paths = {"/login", "/static/web.css", "/static/review.css", "/"}
    for route in web_routes(client.app.state.web):  # type: ignore[attr-defined]
        path = route.path.replace("{run_id}", RUN)
        if path in open_paths:
            continue
        for method in sorted(route.methods or {"GET"}):
            if method == "HEAD":
                continue
            got = client.request(method, path, follow_redirects=False)
            assert got.status_code == 303, (method, path)
            assert got.headers["location"].startswith("/login")


def test_login_sets_a_secure_httponly_strict_cookie_and_is_audited(web: Web) -> None:
    client = web.client()
    answer = login(client, "rita")
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-vq_session=")
    for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert flag in cookie
    page = client.get("/changes")
    assert page.status_code == 200 and RUN in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert ("rita", "login", "ok") in [a[:3] for a in web.audit()]


def test_a_login_without_the_login_form_token_is_refused(web: Web) -> None:
    client = web.client()
    got = client.post("/login", data={"user_id": "rita", "password": PASSWORD,
                                      "csrf_token": "forged"})
    assert got.status_code == 403
    assert ("anonymous", "csrf", "refused") in [a[:3] for a in web.audit()]


def test_failed_logins_lock_the_user_id_even_for_the_right_password(web: Web) -> None:
    client = web.client()
    for _ in range(3):
        assert login(client, "rita", "wrong password!!").status_code == 401
    locked = login(client, "rita")
    assert locked.status_code == 429
    assert "locked" in locked.text
    refused = [a for a in web.audit() if a[:3] == ("rita", "login", "refused")]
    assert [r[3].split(" [")[0] for r in refused] == ["wrong password"] * 3 + [
        "locked: 3 failed logins within 15 minutes"]
    assert login(web.client(), "alan").status_code == 303  # another user is not locked


def test_a_session_replayed_after_logout_is_refused(web: Web) -> None:
    client = web.client()
    login(client, "rita")
    cookie = client.cookies.get("__Host-vq_session")
    page = client.get("/changes")
    out = client.post("/logout", data={"csrf_token": csrf_of(page.text)},
                      follow_redirects=False)
    assert out.status_code == 303
    thief = web.client()
    thief.cookies.set("__Host-vq_session", cookie or "", domain="vqual.test")
    replay = thief.get(f"/runs/{RUN}", follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/login")
    last = web.audit()[-1]
    assert last[:3] == ("anonymous", "session", "refused")
    assert "session of rita ended" in last[3]


def test_an_idle_or_old_session_expires(web: Web) -> None:
    client = web.client()
    login(client, "rita")
    assert client.get("/changes").status_code == 200
    stale = utc_text(utc_now() - timedelta(minutes=web.settings.idle_minutes + 1))
    with db.write_tx(web.server.engine) as conn:
        conn.execute(db.web_sessions.update().values(last_seen=stale))
    assert client.get("/changes", follow_redirects=False).status_code == 303
    assert "expired (idle)" in web.audit()[-1][3]

    client = web.client()
    login(client, "rita")
    old = utc_text(utc_now() - timedelta(minutes=web.settings.absolute_minutes + 1))
    with db.write_tx(web.server.engine) as conn:
        conn.execute(db.web_sessions.update().where(db.web_sessions.c.ended.is_(None))
                     .values(created=old))
    assert client.get("/changes", follow_redirects=False).status_code == 303
    assert "expired (absolute lifetime)" in web.audit()[-1][3]


def test_a_sign_without_the_csrf_token_is_refused(web: Web) -> None:
    client = web.client()
    login(client, "rita")
    for token in ("", "forged-token"):
        got = _sign(client, "reviewed", "rita", csrf=token)
        assert got.status_code == 403  # type: ignore[attr-defined]
    assert _signatures(web) == []
    assert [a[:3] for a in web.audit()].count(("rita", "csrf", "refused")) == 2


def test_a_reviewer_cannot_approve(web: Web) -> None:
    client = web.client()
    login(client, "rita")
    page = client.get(f"/runs/{RUN}")
    assert "sign-approved" not in page.text
    token = csrf_of(page.text)
    assert client.get(f"{SIGN}?meaning=approved").status_code == 403
    got = client.post(f"{SIGN}?meaning=approved", data={
        "csrf_token": token, "user_id": "rita", "password": PASSWORD})
    assert got.status_code == 403
    assert _signatures(web) == []
    refused = [a for a in web.audit() if a[:3] == ("rita", "authorize", "refused")]
    assert len(refused) == 2 and "lacks role approver" in refused[-1][3]


def test_a_key_no_trust_admin_signed_cannot_sign(web: Web) -> None:
    client = web.client()
    login(client, "nora")
    got = _sign(client, "reviewed", "nora")
    assert got.status_code == 403  # type: ignore[attr-defined]
    assert "not in the trust store" in got.text  # type: ignore[attr-defined]
    assert _signatures(web) == []
    last = [a for a in web.audit() if a[1] == "sign"][-1]
    assert last[:3] == ("nora", "sign", "refused") and "not in the trust store" in last[3]


def test_signing_asks_for_both_components_again(web: Web) -> None:
    client = web.client()
    login(client, "rita")
    assert _sign(client, "reviewed", "alan").status_code == 403  # type: ignore[attr-defined]
    assert _sign(client, "reviewed", "rita", "wrong password!!").status_code == 403  # type: ignore[attr-defined]
    assert _signatures(web) == []
    details = [a[3] for a in web.audit() if a[:3] == ("rita", "sign", "refused")]
    assert "the user id typed is not the signed-in user's" in details[0]
    assert "wrong password" in details[1]


def test_what_a_target_reported_is_shown_as_text(web: Web) -> None:
    run_id = "20260302T100000Z-bbbbbb"
    web.push(hostile_run(web.st, run_id))
    client = web.client()
    login(client, "rita")
    page = client.get(f"/runs/{run_id}").text
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;kvm09.lab" in page
    assert "&lt;/pre&gt;&lt;script&gt;alert" in page
    assert HOSTILE_HOST and HOSTILE_FILE  # the markup is in the bundle itself
    with db.read_tx(web.server.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.runs)).scalar_one() == 2


def test_login_sends_nobody_to_another_site(web: Web) -> None:
    for target, lands in (("/runs/" + RUN, "/runs/" + RUN), ("//evil.example", "/review/runs"),
                          ("/\\evil.example", "/review/runs"), ("https://evil.example", "/review/runs")):
        client = web.client()
        page = client.get("/login")
        got = client.post("/login", follow_redirects=False, data={
            "user_id": "rita", "password": PASSWORD, "csrf_token": csrf_of(page.text),
            "next": target})
        assert (got.status_code, got.headers["location"]) == (303, lands)
