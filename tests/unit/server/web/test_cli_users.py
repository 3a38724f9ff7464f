"""Accounts from the command line: the password from a file descriptor (never argv), the key's
public half written for the trust-admin, who adds it with `vqual trust add-key`; mistakes are
one line, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from qualification.cli import main
from qualification.server import db
from qualification.server.web.accounts import attempt_login
from qualification.server.web.settings import WebSettings
from qualification.signing import TrustStore
from tests.unit.server.server_testlib import ServerState
from tests.unit.server.web.web_testlib import PASSWORD


def _add(st: ServerState, *extra: str, password: str = PASSWORD) -> object:
    read, write = os.pipe()
    os.write(write, password.encode() + b"\n")
    os.close(write)
    try:
        return CliRunner().invoke(main, [
            "serve", "user", "add", "--user-id", "rita", "--name", "Rita Reviewer", "--role",
            "reviewer", "--password-fd", str(read), "--state-dir", str(st.state), *extra])
    finally:
        os.close(read)


def test_a_user_is_added_with_the_password_from_a_descriptor(st: ServerState) -> None:
    done = _add(st)
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    public = st.state / "keys" / "rita.web.pub"
    assert "vqual trust add-key" in done.output  # type: ignore[attr-defined]
    assert PASSWORD not in done.output  # type: ignore[attr-defined]
    engine = db.make_engine(db.sqlite_url(st.state / "server" / "server.db"))
    try:
        assert attempt_login(engine, WebSettings(), "rita", PASSWORD, "test").ok
        with db.read_tx(engine) as conn:
            keyid = conn.execute(sa.select(db.web_users.c.keyid)).scalar_one()
    finally:
        engine.dispose()
    assert f"# keyid: {keyid}" in public.read_text()

    added = CliRunner().invoke(main, [
        "trust", "add-key", "--public", str(public), "--name", "Rita Reviewer", "--identity",
        "rita@example.com", "--role", "reviewer", "--state-dir", str(st.state)])
    assert added.exit_code == 0, added.output
    assert "counts once a trust-admin signs this version" in added.output
    key = TrustStore.load(st.state / "trust.yaml").get(keyid)
    assert key is not None and list(key.roles) == ["reviewer"]

    again = _add(st)
    assert again.exit_code == 2  # type: ignore[attr-defined]
    assert again.output == "vqual: user 'rita' exists\n"  # type: ignore[attr-defined]


def test_without_a_descriptor_or_terminal_the_password_is_asked_for_in_one_line(
    st: ServerState, tmp_path: Path
) -> None:
    done = CliRunner().invoke(main, ["serve", "user", "add", "--user-id", "rita", "--name",
                                     "Rita", "--role", "reviewer", "--state-dir", str(st.state)])
    assert done.exit_code == 2
    assert done.output == ("vqual: give the password with --password-fd N or run on a "
                           "terminal\n")
    short = _add(st, password="short")
    assert short.exit_code == 2  # type: ignore[attr-defined]
    assert short.output == "vqual: a password has 12 to 1024 characters\n"  # type: ignore[attr-defined]


def test_a_disabled_user_cannot_log_in(st: ServerState) -> None:
    assert _add(st).exit_code == 0  # type: ignore[attr-defined]
    done = CliRunner().invoke(main, ["serve", "user", "disable", "--user-id", "rita",
                                     "--state-dir", str(st.state)])
    assert (done.exit_code, done.output) == (0, "disabled rita\n")
    engine = db.make_engine(db.sqlite_url(st.state / "server" / "server.db"))
    try:
        login = attempt_login(engine, WebSettings(), "rita", PASSWORD, "test")
    finally:
        engine.dispose()
    assert (login.ok, login.why) == (False, "account disabled")


def test_with_sites_configured_a_person_names_configured_sites(st: ServerState) -> None:
    (st.state / "server").mkdir(exist_ok=True)
    (st.state / "server" / "settings.yaml").write_text("sites: [basel, visp]\n")
    none = _add(st)
    assert none.exit_code == 2  # type: ignore[attr-defined]
    assert "give the account --site" in none.output  # type: ignore[attr-defined]
    other = _add(st, "--site", "zug")
    assert other.output == ("vqual: site zug is not among the configured sites "  # type: ignore[attr-defined]
                            "(basel, visp)\n")
    assert _add(st, "--site", "basel").exit_code == 0  # type: ignore[attr-defined]
    engine = db.make_engine(db.sqlite_url(st.state / "server" / "server.db"))
    try:
        with db.read_tx(engine) as conn:
            assert conn.execute(sa.select(db.web_users.c.sites)).scalar_one() == "basel"
    finally:
        engine.dispose()
