"""Retention (issue 15, item 5): nothing within its retention is deleted by any route or
command; a run past it (an injected clock, no waiting) is purged only by a signed document,
which keeps a tombstone, is logged (the log stays consistent: `vqual log check` and `vqual
serve check` pass) and audited. Against SQLite and the tests' own PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from qualification.cli import main
from qualification.errors import BadInputError, TrustError
from qualification.server import db
from qualification.server.app import build_app
from qualification.server.backup import check_server
from qualification.server.files import pack
from qualification.server.logcheck import check_log
from qualification.server.retention import (
    find_run,
    past_retention,
    purge,
    purge_document,
)
from qualification.server.service import EvidenceServer, Refused
from qualification.server.settings import Settings, parse_settings
from qualification.timeutil import parse_utc
from tests.unit.server.server_testlib import InProcessClient, ServerState, start_server
from tests.unit.server.sites_testlib import site_run

OLD, KEPT, OTHER = ("20260301T100000Z-old001", "20260301T110000Z-kept01",
                    "20260301T120000Z-other1")


@pytest.fixture
def served(st: ServerState, db_url: str | None) -> Iterator[tuple[EvidenceServer, dict[str, str]]]:
    server, tokens = start_server(st, db_url)
    # basel keeps its runs 30 days, every other run 10 (short, so the clock below is plain)
    server.settings = Settings(sites=("basel", "visp"), retention_days=10,
                               site_retention_days={"basel": 30})
    yield server, tokens
    server.close()


def _pushed(server: EvidenceServer, run_id: str) -> Any:
    return parse_utc(find_run(server, run_id).pushed)


def test_a_purge_within_retention_is_refused_and_audited(st: ServerState, served: Any) -> None:
    server, _tokens = served
    server.push("ci", pack(site_run(st, KEPT, "basel")))
    held = find_run(server, KEPT)
    assert (held.days, held.sites) == (30, frozenset({"basel"}))
    envelope = purge_document(st.keys.approver, st.keys.trust, held, "end of retention")
    eleven_days = _pushed(server, KEPT) + timedelta(days=11)  # past the default, not basel's
    with pytest.raises(BadInputError) as refused:
        purge(server, KEPT, envelope, eleven_days)
    assert refused.value.one_line().startswith(f"run {KEPT} is within its retention until ")
    assert "(30 days); nothing within its retention is deleted" in refused.value.one_line()
    assert past_retention(server, eleven_days) == []
    assert server.pull("qa", KEPT)[1]  # still held, whole
    assert ("retention", "purge", "refused", KEPT) in [
        (r["who"], r["action"], r["outcome"], r["run_id"]) for r in server.audit_rows()]


def test_no_route_deletes_a_run(st: ServerState, served: Any) -> None:
    server, tokens = served
    server.push("ci", pack(site_run(st, KEPT, "basel")))
    client = TestClient(build_app(server))
    for path in (f"/api/v1/runs/{KEPT}", f"/api/v1/runs/{KEPT}/bundle"):
        answer = client.delete(path, headers={"Authorization": f"Bearer {tokens['admin']}"})
        assert answer.status_code == 405
    assert server.pull("qa", KEPT)[1]


def test_a_purge_past_retention_keeps_a_tombstone_and_a_consistent_log(
    st: ServerState, served: Any
) -> None:
    server, tokens = served
    old, other = site_run(st, OLD, "visp"), site_run(st, OTHER, "basel")
    server.push("ci", pack(old))
    server.push("ci", pack(other))
    client: Any = InProcessClient(build_app(server), tokens["reader"])  # check_log's Client
    assert check_log(client, other, st.state).problems == []  # the client saw size 2

    later = _pushed(server, OTHER) + timedelta(days=11)
    assert [r.run_id for r in past_retention(server, later)] == [OLD]
    held = find_run(server, OLD)
    # an executor may not purge: the document needs an approver or trust-admin
    with pytest.raises(TrustError):
        purge_document(st.keys.executor, st.keys.trust, held, "end of retention")
    envelope = purge_document(st.keys.approver, st.keys.trust, held, "end of retention")
    out = purge(server, OLD, envelope, later)
    assert (out["run_id"], out["log_index"]) == (OLD, 3)

    assert not (server.store / held.change_id / OLD).exists()
    with db.read_tx(server.engine) as conn:
        stone = conn.execute(sa.select(db.tombstones)).one()
        assert conn.execute(sa.select(db.runs.c.run_id)).scalars().all() == [OTHER]
    assert (stone.run_id, stone.seal, stone.signer, stone.reason) == (
        OLD, held.seal, "Anna Approver", "end of retention")
    assert ("Anna Approver", "purge", "ok", OLD) in [
        (r["who"], r["action"], r["outcome"], r["run_id"]) for r in server.audit_rows()]

    result = check_log(client, other, st.state)  # the log grew by the purge, consistently
    assert result.problems == [] and result.consistent_from == 2 and result.size == 3
    # the purged run's own copy, held elsewhere, still proves it was logged
    assert check_log(client, old, st.state).problems == []
    problems, counts = check_server(server.config)
    assert problems == [] and counts == {"entries": 3, "checkpoints": 3, "runs": 1}
    (server.store / held.change_id / OLD).mkdir()  # a purge whose files were left behind
    assert check_server(server.config)[0] == [
        f"purged run {OLD}: its files are still in the store"]
    (server.store / held.change_id / OLD).rmdir()

    with pytest.raises(Refused) as again:
        server.push("ci", pack(old))
    assert again.value.status == 409 and "was purged past its retention" in again.value.message
    with pytest.raises(Refused):
        server.run_info(OLD)


def test_a_purge_document_for_another_run_is_refused(st: ServerState, served: Any) -> None:
    server, _tokens = served
    server.push("ci", pack(site_run(st, OLD, "visp")))
    server.push("ci", pack(site_run(st, OTHER, "visp")))
    wrong = purge_document(st.keys.approver, st.keys.trust, find_run(server, OTHER), "x")
    later = _pushed(server, OTHER) + timedelta(days=11)
    with pytest.raises(BadInputError, match="names another run or seal"):
        purge(server, OLD, wrong, later)
    with pytest.raises(BadInputError, match="no run 20990101T000000Z-nohold is held"):
        purge(server, "20990101T000000Z-nohold", wrong, later)
    refused = [r["detail"] for r in server.audit_rows()
               if (r["action"], r["outcome"]) == ("purge", "refused")]
    assert refused[0].startswith("no run ") and "names another run" in refused[1]
    assert len(past_retention(server, later)) == 2


@pytest.mark.parametrize(("doc", "message"), [
    ({"sitez": []}, "settings are a mapping of sites and retention"),
    ({"retention": {"default_days": "ten years"}}, "must be a whole number of days"),
    ({"sites": ["basel"], "retention": {"sites": {"visp": 5}}}, "not among the sites"),
    ({"sites": ["../x"]}, "is not a valid name"),
])
def test_malformed_settings_are_refused_in_one_line(doc: Any, message: str) -> None:
    with pytest.raises(BadInputError, match=message) as exc:
        parse_settings(doc, "settings.yaml")
    assert "\n" not in exc.value.one_line()


def test_the_retention_commands(st: ServerState) -> None:
    server, _tokens = start_server(st)
    try:
        server.push("ci", pack(site_run(st, KEPT, "basel")))
    finally:
        server.close()
    runner = CliRunner()
    listed = runner.invoke(main, ["serve", "retention", "list", "--state-dir", str(st.state)])
    assert (listed.exit_code, listed.output) == (0, "")
    listed = runner.invoke(main, ["serve", "retention", "list", "--all",
                                  "--state-dir", str(st.state)])
    row = json.loads(listed.output)
    assert (row["run_id"], row["retention_days"], row["past"]) == (KEPT, 3653, False)
    assert row["retained_until"].startswith(str(int(row["pushed"][:4]) + 10))
    done = runner.invoke(main, ["serve", "retention", "purge", KEPT, "--reason", "early",
                                "--key", str(st.state / "nokey.pem"),
                                "--state-dir", str(st.state)])
    assert done.exit_code == 2
    assert done.output.startswith(f"vqual: run {KEPT} is within its retention until ")
    assert done.output.count("\n") == 1
