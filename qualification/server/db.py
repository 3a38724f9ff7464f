"""The server's database: tables (SQLAlchemy Core), the engine, and the one write lock.

SQLite (the embedded default, a file in the state directory) and PostgreSQL are the same code,
chosen by the database URL. The schema is made and changed only by the Alembic migrations in
``migrations/`` (:func:`upgrade`); these table objects mirror the newest revision.

Every write (a push, a void, a token) runs in :func:`write_tx`, which takes the database's
write lock first: ``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on
PostgreSQL. So two workers pushing at once append to the transparency log one after the
other and the log stays one consistent sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

#: The newest migration; the server refuses to start on a database at another revision.
HEAD = "0006"
#: The advisory lock key every PostgreSQL write transaction takes ("vq15").
_PG_LOCK = 0x76713135

metadata = sa.MetaData()

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("revoked", sa.String(32), nullable=True),
    sa.Column("sites", sa.Text, nullable=True),  # comma-separated; "*" every site
)
runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("change_id", sa.String(64), nullable=False, index=True),
    sa.Column("seal", sa.String(64), nullable=False, unique=True),
    sa.Column("records_sha256", sa.String(64), nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("pushed", sa.String(32), nullable=False),
    sa.Column("pushed_by", sa.String(64), nullable=False),
    sa.Column("sites", sa.Text, nullable=True),  # from inventory.json; NULL: not read yet
)
audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("who", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
log_entries = sa.Table(
    "log_entries", metadata,
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("leaf", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.String(64), nullable=False, index=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("time", sa.String(32), nullable=False),
)
#: The root of each complete, aligned subtree of 2**level leaves (``pos`` counts such subtrees
#: from the left, from 0): the log's incremental tree state (:mod:`.merkle`).
log_nodes = sa.Table(
    "log_nodes", metadata,
    sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
checkpoints = sa.Table(
    "checkpoints", metadata,
    sa.Column("size", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("envelope", sa.LargeBinary, nullable=False),
)
voids = sa.Table(
    "voids", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seal", sa.String(64), nullable=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("signer", sa.String(128), nullable=False),
    sa.Column("envelope", sa.LargeBinary, nullable=False),
)
# The browser review (qualification/server/web/): people's accounts, sessions, login attempts.
web_users = sa.Table(
    "web_users", metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("printed_name", sa.String(128), nullable=False),
    sa.Column("roles", sa.String(128), nullable=False),  # space-separated
    sa.Column("sites", sa.String(512), nullable=False),  # space-separated; empty: every site
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("keyid", sa.String(64), nullable=True),
    sa.Column("sealed_key", sa.LargeBinary, nullable=True),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("disabled", sa.String(32), nullable=True),
)
web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("last_seen", sa.String(32), nullable=False),
    sa.Column("ended", sa.String(32), nullable=True),
    sa.Column("address", sa.String(64), nullable=False),
)
web_logins = sa.Table(
    "web_logins", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.String(32), nullable=False, index=True),
    sa.Column("user_id", sa.String(64), nullable=False, index=True),
    sa.Column("address", sa.String(64), nullable=False, index=True),
    sa.Column("ok", sa.Boolean, nullable=False),
)

#: A run purged past its retention: what it was, who purged it, when and why (signed).
tombstones = sa.Table(
    "tombstones", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("change_id", sa.String(64), nullable=False),
    sa.Column("seal", sa.String(64), nullable=False, unique=True),
    sa.Column("pushed", sa.String(32), nullable=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("signer", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("envelope", sa.LargeBinary, nullable=False),
)

#: A change's deviations as a controller pushed them (``content``: the deviation's JSON, whose
#: SHA-256 of canonical bytes is ``digest``) and the sites they belong to (comma-separated).
deviations = sa.Table(
    "deviations", metadata,
    sa.Column("change_id", sa.String(64), primary_key=True),
    sa.Column("deviation_id", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("sites", sa.Text, nullable=False),
    sa.Column("pushed", sa.String(32), nullable=False),
    sa.Column("pushed_by", sa.String(64), nullable=False),
)
#: Waivers (signed approvals of deviations), each the file ``vqual deviation approve`` writes
#: under ``waivers/`` (``file``) with its time-stamp token when the trust store names a TSA.
waivers = sa.Table(
    "waivers", metadata,
    sa.Column("file", sa.String(255), primary_key=True),
    sa.Column("change_id", sa.String(64), nullable=False, index=True),
    sa.Column("deviation_id", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("envelope", sa.LargeBinary, nullable=False),
    sa.Column("token", sa.LargeBinary, nullable=True),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("signer", sa.String(128), nullable=False),
    sa.Column("keyid", sa.String(64), nullable=False),
    sa.Column("stored_by", sa.String(64), nullable=False),
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets explicit ``BEGIN IMMEDIATE`` transactions."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own BEGIN is deferred; take the transaction ourselves (below).
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the database's one write lock until it commits."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read-only view (on SQLite also a transaction, so reads see one state)."""
    with engine.begin() as conn:
        yield conn


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` with the shipped migrations."""
    from alembic import command

    command.upgrade(_alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        found = MigrationContext.configure(conn).get_current_revision()
    return None if found is None else str(found)
