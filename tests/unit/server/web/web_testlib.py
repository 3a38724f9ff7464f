"""People for the browser review's tests: accounts on the server, their keys signed into the
trust store by the test root (as a trust-admin would with ``vqual trust sign``) or not."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from qualification.server.service import EvidenceServer
from qualification.server.web.accounts import add_user
from qualification.signing import TrustStore
from tests.trustroot_testlib import pin_state
from tests.unit.server.server_testlib import ServerState

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_person(st: ServerState, server: EvidenceServer, user_id: str, name: str,
               roles: list[str], *, trusted: bool = True, password: str = PASSWORD) -> str:
    """An account; with ``trusted`` its key is in a root-signed trust version with the
    signing roles among ``roles``. Returns the key id."""
    new = add_user(server.engine, user_id, name, roles, password)
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
                                       "csrf_token": csrf_of(page.text), "next": "/changes"},
                       follow_redirects=False)
