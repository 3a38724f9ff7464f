"""Service-account tokens: created by an administrator, stored only as their SHA-256.

A token is 32 random bytes (URL-safe base64, prefixed ``vq_``); the server keeps its hash, so
a copy of the database does not let anyone push. Tokens have high entropy, so an unsalted
SHA-256 is enough (no password stretching is needed against guessing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qualification.errors import BadInputError
from qualification.server.db import read_tx, tokens, write_tx
from qualification.server.files import valid_name
from qualification.server.settings import ALL_SITES, decode_sites, encode_sites
from qualification.timeutil import utc_now_text

#: What each role may do; an admin may do everything.
ROLES = ("pusher", "reader", "admin")
PREFIX = "vq_"


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    #: The sites whose runs it may reach when sites are configured ("*": every site).
    sites: frozenset[str] = frozenset()

    def may(self, role: str) -> bool:
        return self.role == role or self.role == "admin"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(engine: Engine, name: str, role: str, sites: tuple[str, ...] = ()) -> str:
    """A new token for the service account ``name`` of ``sites``; returned once, stored hashed.

    Raises:
        BadInputError: unknown role, bad name or site, or an account of that name exists.
    """
    if role not in ROLES:
        raise BadInputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    valid_name(name, "account name")
    for site in sites:
        if site != ALL_SITES:
            valid_name(site, "site")
    token = PREFIX + secrets.token_urlsafe(32)
    with write_tx(engine) as conn:
        if conn.execute(sa.select(tokens.c.name).where(tokens.c.name == name)).first():
            raise BadInputError(f"service account {name!r} exists; revoke it first")
        conn.execute(tokens.insert().values(name=name, role=role, token_hash=token_hash(token),
                                            created=utc_now_text(), revoked=None,
                                            **({"sites": encode_sites(sites)} if sites else {})))
    return token


def revoke_token(engine: Engine, name: str) -> None:
    with write_tx(engine) as conn:
        done = conn.execute(
            tokens.update().where(tokens.c.name == name, tokens.c.revoked.is_(None))
            .values(revoked=utc_now_text())
        )
        if done.rowcount != 1:
            raise BadInputError(f"no active service account {name!r}")
    # The name stays taken (a revoked row is history); a new token needs a new name.


def authenticate(engine: Engine, token: str) -> Account | None:
    """The account a presented token belongs to, or None (unknown or revoked)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    wanted = token_hash(token)
    with read_tx(engine) as conn:
        row = conn.execute(
            sa.select(tokens.c.name, tokens.c.role, tokens.c.token_hash, tokens.c.sites)
            .where(tokens.c.token_hash == wanted, tokens.c.revoked.is_(None))
        ).first()
    if row is None or not hmac.compare_digest(row.token_hash, wanted):
        return None
    return Account(row.name, row.role, decode_sites(row.sites))
