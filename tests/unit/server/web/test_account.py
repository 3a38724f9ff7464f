"""A person changes their own password: the old one stops working for login and signing, the
signing key opens (and signs) with the new one; a wrong current password is refused, counted
toward the lockout and audited."""

from __future__ import annotations

from tests.unit.server.web.conftest import RUN, Web
from tests.unit.server.web.web_testlib import PASSWORD, csrf_of, login

NEW = "a brand new passphrase of mine"


def _change(web: Web, client: object, current: str, new: str, confirm: str) -> object:
    page = client.get("/account/password")  # type: ignore[attr-defined]
    return client.post("/account/password", data={  # type: ignore[attr-defined]
        "csrf_token": csrf_of(page.text), "current": current, "new": new, "confirm": confirm})


def test_a_changed_password_logs_in_and_signs_and_the_old_one_does_not(web: Web) -> None:
    client = web.client()
    login(client, "rita")
    assert _change(web, client, PASSWORD, NEW, NEW + "x").status_code == 422  # type: ignore[attr-defined]
    assert _change(web, client, "not my password", NEW, NEW).status_code == 403  # type: ignore[attr-defined]
    done = _change(web, client, PASSWORD, NEW, NEW)
    assert done.status_code == 200 and 'id="done"' in done.text  # type: ignore[attr-defined]
    assert login(web.client(), "rita").status_code == 401
    fresh = web.client()
    assert login(fresh, "rita", NEW).status_code == 303
    page = fresh.get(f"/runs/{RUN}/sign?meaning=reviewed")
    signed = fresh.post(f"/runs/{RUN}/sign?meaning=reviewed", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "user_id": "rita", "password": NEW})
    assert signed.status_code == 303
    rows = [a[:3] for a in web.audit()]
    assert ("rita", "password", "refused") in rows and ("rita", "password", "ok") in rows
    assert ("rita", "sign", "ok") in rows
