"""The audit trail exported (issue 15, item 4): every push, pull, refusal and void is a row,
and ``GET /api/v1/audit`` and ``vqual serve audit`` filter it by time, account, action and
run, as JSON or CSV. Against SQLite and the tests' own PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from qualification.cli import main
from qualification.server.app import build_app
from qualification.server.files import pack
from qualification.server.service import EvidenceServer
from qualification.server.voiding import void_document
from tests.unit.server.server_testlib import ServerState, new_run, start_server

RUN, OTHER = "20260301T100000Z-aaaaaa", "20260302T100000Z-bbbbbb"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def trail(st: ServerState, db_url: str | None) -> Iterator[tuple[EvidenceServer, dict[str, str],
                                                                 TestClient]]:
    """A server whose trail holds a push, a refused push, a pull, a refused pull, a void."""
    server, tokens = start_server(st, db_url)
    client = TestClient(build_app(server))
    tar = {"Content-Type": "application/x-tar"}
    assert client.post("/api/v1/runs", content=pack(new_run(st, RUN)),
                       headers={**tar, **_auth(tokens["pusher"])}).status_code == 201
    assert client.post("/api/v1/runs", content=b"not a tar",
                       headers={**tar, **_auth(tokens["pusher"])}).status_code == 422
    assert client.get(f"/api/v1/runs/{RUN}/bundle",
                      headers=_auth(tokens["reader"])).status_code == 200
    assert client.get(f"/api/v1/runs/{OTHER}/bundle",
                      headers=_auth(tokens["reader"])).status_code == 404
    envelope = void_document(st.keys.approver, st.keys.trust, server.run_info(RUN), "wrong host")
    assert client.post(f"/api/v1/runs/{RUN}/void", content=envelope,
                       headers=_auth(tokens["pusher"])).status_code == 200
    yield server, tokens, client
    server.close()


def _get(client: TestClient, token: str, query: str) -> Any:
    answer = client.get(f"/api/v1/audit?{query}", headers=_auth(token))
    assert answer.status_code == 200, answer.text
    return answer


def test_every_push_pull_refusal_and_void_is_in_the_trail(trail: Any) -> None:
    _server, tokens, client = trail
    rows = _get(client, tokens["admin"], "").json()
    seen = [(r["who"], r["action"], r["outcome"], r["run_id"]) for r in reversed(rows)]
    assert seen == [
        ("acct-pusher", "push", "stored", RUN),
        ("acct-pusher", "push", "refused", None),
        ("acct-reader", "pull", "ok", RUN),
        ("acct-reader", "pull", "refused", None),
        ("acct-pusher", "void", "ok", RUN),
    ]


def test_the_trail_filters_by_account_action_run_and_time(trail: Any) -> None:
    _server, tokens, client = trail
    admin = tokens["admin"]
    assert {r["action"] for r in _get(client, admin, "account=acct-reader").json()} == {"pull"}
    assert [r["outcome"] for r in _get(client, admin, "action=pull").json()] == ["refused", "ok"]
    assert [r["action"] for r in _get(client, admin, f"run={RUN}").json()] == [
        "void", "pull", "push"]
    rows = _get(client, admin, "").json()
    first, last = rows[-1]["time"], rows[0]["time"]
    assert len(_get(client, admin, f"from={first}&to={last}").json()) == len(rows) - 1
    assert _get(client, admin, "from=2999-01-01").json() == []
    assert len(_get(client, admin, f"to=2999-01-01&from={first[:10]}").json()) == len(rows)


def test_the_trail_exports_as_csv(trail: Any) -> None:
    _server, tokens, client = trail
    answer = _get(client, tokens["admin"], "format=csv&action=push")
    assert answer.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["who"], r["outcome"], r["run_id"]) for r in table] == [
        ("acct-pusher", "refused", ""), ("acct-pusher", "stored", RUN)]


def test_bad_filters_and_other_roles_are_refused(trail: Any) -> None:
    server, tokens, client = trail
    for query, message in (("from=yesterday", "from must be a UTC date or time"),
                           ("format=xml", "format must be json or csv"),
                           ("limit=many", "limit must be a whole number")):
        answer = client.get(f"/api/v1/audit?{query}", headers=_auth(tokens["admin"]))
        assert answer.status_code == 422 and message in answer.json()["error"]
    assert client.get("/api/v1/audit", headers=_auth(tokens["reader"])).status_code == 403
    refused = [(r["who"], r["action"]) for r in server.audit_rows() if r["outcome"] == "refused"]
    assert ("acct-reader", "audit") in refused and ("acct-admin", "audit") in refused


def test_vqual_serve_audit_filters_and_writes_csv(st: ServerState, trail: Any,
                                                  db_url: str | None) -> None:
    where = ["--state-dir", str(st.state)] + (["--database-url", db_url] if db_url else [])
    done = CliRunner().invoke(main, ["serve", "audit", "--action", "void", *where])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in done.output.splitlines()]
    assert [(r["who"], r["run_id"]) for r in rows] == [("acct-pusher", RUN)]
    done = CliRunner().invoke(main, ["serve", "audit", "--csv", "--account", "acct-reader",
                                     *where])
    assert done.output.splitlines()[0] == "id,time,who,action,run_id,outcome,detail"
    assert len(done.output.splitlines()) == 3
    done = CliRunner().invoke(main, ["serve", "audit", "--from", "last week", *where])
    assert done.exit_code == 2 and done.output.count("\n") == 1
