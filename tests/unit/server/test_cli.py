"""The server's administration commands: one line each, tokens shown once and stored hashed,
the missing extra named."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from qualification.cli import main
from qualification.server import db
from qualification.server.tokens import authenticate, token_hash
from tests.unit.server.server_testlib import ServerState


def test_a_token_is_shown_once_and_stored_only_as_its_hash(st: ServerState) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["serve", "token", "create", "--name", "ci-pipeline", "--role",
                                "pusher", "--state-dir", str(st.state)])
    assert done.exit_code == 0, done.output
    token = done.output.strip()
    assert token.startswith("vq_") and len(token) > 40
    engine = db.make_engine(db.sqlite_url(st.state / "server" / "server.db"))
    try:
        with db.read_tx(engine) as conn:
            stored = conn.execute(sa.select(db.tokens.c.token_hash)).scalar_one()
        assert stored == token_hash(token)
        assert token.encode() not in (st.state / "server" / "server.db").read_bytes()
        assert authenticate(engine, token) is not None
        again = runner.invoke(main, ["serve", "token", "create", "--name", "ci-pipeline",
                                     "--role", "pusher", "--state-dir", str(st.state)])
        assert again.exit_code == 2
        assert again.output == "vqual: service account 'ci-pipeline' exists; revoke it first\n"
        revoked = runner.invoke(main, ["serve", "token", "revoke", "--name", "ci-pipeline",
                                       "--state-dir", str(st.state)])
        assert revoked.exit_code == 0 and authenticate(engine, token) is None
    finally:
        engine.dispose()


def test_serve_without_the_extra_names_it(
    st: ServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    done = CliRunner().invoke(main, ["serve", "--state-dir", str(st.state)])
    assert done.exit_code == 2
    assert done.output == ("vqual: the evidence server needs starlette, which is not installed: "
                           "pip install 'vqual[server]'\n")


def test_serve_refuses_a_log_key_outside_the_trust_store(st: ServerState) -> None:
    st.log_key.rename(st.state / "keys" / "elsewhere.pem")
    done = CliRunner().invoke(main, ["serve", "--state-dir", str(st.state)])
    assert done.exit_code == 2
    assert "log.pem cannot be read" in done.output and done.output.count("\n") == 1


def test_check_of_an_empty_server_is_consistent(st: ServerState) -> None:
    done = CliRunner().invoke(main, ["serve", "upgrade", "--state-dir", str(st.state)])
    assert done.output == f"database at schema revision {db.HEAD}\n"
    done = CliRunner().invoke(main, ["serve", "check", "--state-dir", str(st.state)])
    assert (done.exit_code, done.output) == (
        0, "consistent: 0 log entries, 0 signed checkpoints, 0 runs\n")
