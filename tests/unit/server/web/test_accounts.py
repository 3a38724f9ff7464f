"""Accounts: the password is kept only as an Argon2id hash; the signing key only sealed under
a key derived from the password and bound to its user; bad account data is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qualification.errors import BadInputError
from qualification.server import db
from qualification.server.web.accounts import (
    add_user,
    hash_password,
    open_key,
    password_matches,
    seal_key,
)
from qualification.signing import Ed25519Signer
from tests.unit.server.server_testlib import ServerState, start_server
from tests.unit.server.web.web_testlib import PASSWORD


def test_a_password_is_kept_as_an_argon2id_hash_only() -> None:
    phc = hash_password(PASSWORD)
    assert phc.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in phc
    assert password_matches(PASSWORD, phc)
    assert not password_matches(PASSWORD + "x", phc)
    assert hash_password(PASSWORD) != phc  # salted


def test_a_sealed_key_opens_only_with_its_password_and_user() -> None:
    key = Ed25519PrivateKey.generate()
    keyid = Ed25519Signer(key).keyid
    sealed = seal_key(key, PASSWORD, "rita", keyid)
    opened = open_key(sealed, PASSWORD, "rita", keyid)
    assert opened is not None and opened.keyid == keyid
    assert open_key(sealed, "wrong password!", "rita", keyid) is None
    assert open_key(sealed, PASSWORD, "mallory", keyid) is None  # moved to another account


def test_the_database_holds_no_password_or_private_key_in_clear(st: ServerState) -> None:
    server, _ = start_server(st)
    try:
        new = add_user(server.engine, "rita", "Rita Reviewer", ["reviewer"], PASSWORD)
        with db.read_tx(server.engine) as conn:
            row = conn.execute(sa.select(db.web_users)).one()
        assert row.keyid == new.keyid
        assert PASSWORD.encode() not in bytes(row.sealed_key)
        assert PASSWORD not in row.password_hash
        raw = Path(server.config.database_url.removeprefix("sqlite:///")).read_bytes()
        assert PASSWORD.encode() not in raw
    finally:
        server.close()


@pytest.mark.parametrize(("user_id", "name", "roles", "password", "why"), [
    ("Rita Smith", "Rita", ["reviewer"], PASSWORD, "user id"),
    ("rita", "", ["reviewer"], PASSWORD, "printed name"),
    ("rita", "Rita", ["executor"], PASSWORD, "roles must be among"),
    ("rita", "Rita", ["reviewer"], "short", "a password has 12"),
])
def test_bad_account_data_is_refused_in_one_line(
    st: ServerState, user_id: str, name: str, roles: list[str], password: str, why: str
) -> None:
    server, _ = start_server(st)
    try:
        with pytest.raises(BadInputError, match=why):
            add_user(server.engine, user_id, name, roles, password)
        add_user(server.engine, "anna", "Anna", ["approver"], PASSWORD)
        with pytest.raises(BadInputError, match="exists"):
            add_user(server.engine, "anna", "Anna Again", ["approver"], PASSWORD)
    finally:
        server.close()
