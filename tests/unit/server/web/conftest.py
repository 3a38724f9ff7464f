"""A served app with people: a reviewer, an approver (both keys signed in by the test root),
and an approver whose key no trust-admin has signed; one run pushed. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from qualification.server.app import build_app
from qualification.server.files import pack
from qualification.server.service import EvidenceServer
from qualification.server.web import WebSettings
from tests.unit.server.server_testlib import ServerState, new_run, start_server
from tests.unit.server.web.web_testlib import add_person

RUN = "20260301T100000Z-aaaaaa"


@dataclass
class Web:
    st: ServerState
    server: EvidenceServer
    tokens: dict[str, str]
    settings: WebSettings

    def client(self) -> TestClient:
        """A browser of its own (its own cookies), over https so Secure cookies flow."""
        return TestClient(build_app(self.server, self.settings), base_url="https://vqual.test")

    def push(self, bundle: object) -> None:
        answer = self.client().post("/api/v1/runs", content=pack(bundle),  # type: ignore[arg-type]
                                    headers={"Content-Type": "application/x-tar",
                                             "Authorization": f"Bearer {self.tokens['pusher']}"})
        assert answer.status_code in (200, 201), answer.text

    def audit(self) -> list[tuple[str, str, str, str]]:
        return [(r["who"], r["action"], r["outcome"], r["detail"])
                for r in reversed(self.server.audit_rows())]


@pytest.fixture
def web(st: ServerState, db_url: str | None) -> Iterator[Web]:
    server, tokens = start_server(st, db_url)
    add_person(st, server, "rita", "Rita Reviewer", ["reviewer"])
    add_person(st, server, "alan", "Alan Approver", ["approver"])
    add_person(st, server, "nora", "Nora Newcomer", ["approver", "reviewer"], trusted=False)
    web = Web(st, server, tokens, WebSettings(lockout_failures=3))
    web.push(new_run(st, RUN))
    yield web
    server.close()
