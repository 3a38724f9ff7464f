"""Per-site authorization (issue 15, item 4): with sites configured, an account reaches only
runs of its sites (a run's sites are its recorded inventory's ``vqual_site``; a run spanning
sites belongs to each); every refusal is a 403 with one line, and is in the audit trail with
the run. Against SQLite and the tests' own PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from qualification.server.app import build_app
from qualification.server.files import pack
from qualification.server.service import EvidenceServer
from qualification.server.settings import Settings
from qualification.server.tokens import create_token
from qualification.server.voiding import void_document
from tests.unit.server.server_testlib import ServerState, start_server
from tests.unit.server.sites_testlib import site_run

BASEL, VISP, BOTH, NONE = ("20260301T100000Z-basel1", "20260301T110000Z-visp01",
                           "20260301T120000Z-both01", "20260301T130000Z-nosite")
TAR = {"Content-Type": "application/x-tar"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sited(st: ServerState, db_url: str | None) -> Iterator[tuple[EvidenceServer, dict[str, str],
                                                                 TestClient]]:
    server, tokens = start_server(st, db_url)
    server.settings = Settings(sites=("basel", "visp"))
    for name, role, sites in (("basel-ci", "pusher", ("basel",)), ("visp-ci", "pusher", ("visp",)),
                              ("basel-qa", "reader", ("basel",)), ("visp-qa", "reader", ("visp",)),
                              ("hq-qa", "reader", ("*",)), ("hq-admin", "admin", ("*",)),
                              ("basel-admin", "admin", ("basel",))):
        tokens[name] = create_token(server.engine, name, role, sites)
    yield server, tokens, TestClient(build_app(server))
    server.close()


def _push(client: TestClient, token: str, bundle: Any) -> Any:
    return client.post("/api/v1/runs", content=pack(bundle), headers={**TAR, **_auth(token)})


def _refusals(server: EvidenceServer) -> list[tuple[str, str, str | None]]:
    return [(r["who"], r["action"], r["run_id"]) for r in server.audit_rows()
            if r["outcome"] == "refused"]


def _one_line_403(answer: Any, account: str, action: str) -> None:
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert "\n" not in error and error.startswith(f"account {account} (sites: ")
    assert f"may not {action} run" in error


def test_a_pusher_pushes_only_runs_of_its_sites(st: ServerState, sited: Any) -> None:
    server, tokens, client = sited
    assert _push(client, tokens["basel-ci"], site_run(st, BASEL, "basel")).status_code == 201
    refused = _push(client, tokens["visp-ci"], site_run(st, VISP + "x", "basel"))
    _one_line_403(refused, "visp-ci", "push")
    assert ("visp-ci", "push", VISP + "x") in _refusals(server)
    # A run spanning both sites belongs to each: either site's pipeline may push it.
    assert _push(client, tokens["visp-ci"], site_run(st, BOTH, "basel", "visp")).status_code == 201
    # A run recording no site belongs to none: only an account of every site takes it.
    unplaced = site_run(st, NONE)
    _one_line_403(_push(client, tokens["basel-ci"], unplaced), "basel-ci", "push")
    assert _push(client, tokens["hq-admin"], unplaced).status_code == 201


def test_reading_and_pulling_are_limited_to_the_accounts_sites(st: ServerState,
                                                               sited: Any) -> None:
    server, tokens, client = sited
    for run_id, site in ((BASEL, "basel"), (VISP, "visp")):
        assert _push(client, tokens[f"{site}-ci"], site_run(st, run_id, site)).status_code == 201
    assert _push(client, tokens["basel-ci"], site_run(st, BOTH, "basel", "visp")).status_code == 201

    got = client.get(f"/api/v1/runs/{BASEL}", headers=_auth(tokens["basel-qa"]))
    assert got.status_code == 200 and got.json()["sites"] == ["basel"]
    _one_line_403(client.get(f"/api/v1/runs/{BASEL}", headers=_auth(tokens["visp-qa"])),
                  "visp-qa", "read")
    _one_line_403(client.get(f"/api/v1/runs/{BASEL}/bundle", headers=_auth(tokens["visp-qa"])),
                  "visp-qa", "pull")
    # by seal too: the address does not bypass the site
    seal = got.json()["seal"]
    _one_line_403(client.get(f"/api/v1/runs/{seal}/bundle", headers=_auth(tokens["visp-qa"])),
                  "visp-qa", "pull")
    assert client.get(f"/api/v1/runs/{BOTH}/bundle",
                      headers=_auth(tokens["visp-qa"])).status_code == 200
    assert client.get(f"/api/v1/runs/{BASEL}/bundle",
                      headers=_auth(tokens["hq-qa"])).status_code == 200
    # a pusher reading what it would void, and an admin of one site, are held to it as well
    _one_line_403(client.get(f"/api/v1/runs/{VISP}", headers=_auth(tokens["basel-ci"])),
                  "basel-ci", "read")
    _one_line_403(client.get(f"/api/v1/runs/{VISP}", headers=_auth(tokens["basel-admin"])),
                  "basel-admin", "read")
    refused = _refusals(server)
    for who, action, run in (("visp-qa", "read", BASEL), ("visp-qa", "pull", BASEL),
                             ("basel-ci", "read", VISP), ("basel-admin", "read", VISP)):
        assert (who, action, run) in refused
    assert ("visp-qa", "pull", "ok") in [(r["who"], r["action"], r["outcome"])
                                         for r in server.audit_rows()]


def test_a_void_is_limited_to_the_accounts_sites(st: ServerState, sited: Any) -> None:
    server, tokens, client = sited
    assert _push(client, tokens["basel-ci"], site_run(st, BASEL, "basel")).status_code == 201
    info = server.run_info(BASEL)
    envelope = void_document(st.keys.approver, st.keys.trust, info, "pushed by mistake")
    answer = client.post(f"/api/v1/runs/{BASEL}/void", content=envelope,
                         headers=_auth(tokens["visp-ci"]))
    _one_line_403(answer, "visp-ci", "void")
    assert ("visp-ci", "void", BASEL) in _refusals(server)
    assert server.run_info(BASEL)["voided"] is None
    assert client.post(f"/api/v1/runs/{BASEL}/void", content=envelope,
                       headers=_auth(tokens["basel-ci"])).status_code == 200


def test_the_audit_trail_needs_an_account_of_every_site(st: ServerState, sited: Any) -> None:
    server, tokens, client = sited
    answer = client.get("/api/v1/audit", headers=_auth(tokens["basel-admin"]))
    assert answer.status_code == 403 and "not of every site" in answer.json()["error"]
    assert ("basel-admin", "audit", None) in _refusals(server)
    assert client.get("/api/v1/audit", headers=_auth(tokens["hq-admin"])).status_code == 200


def test_without_sites_configured_nothing_is_refused_by_site(st: ServerState,
                                                             db_url: str | None) -> None:
    server, tokens = start_server(st, db_url)
    try:
        client = TestClient(build_app(server))
        assert _push(client, tokens["pusher"], site_run(st, BASEL, "basel")).status_code == 201
        got = client.get(f"/api/v1/runs/{BASEL}/bundle", headers=_auth(tokens["reader"]))
        assert got.status_code == 200
    finally:
        server.close()
