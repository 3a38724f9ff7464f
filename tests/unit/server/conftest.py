"""Every push, pull and log test runs against SQLite and against the tests' own PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_testlib import Postgres, postgres_fixture
from tests.unit.server.server_testlib import ServerState, make_state

postgres = postgres_fixture()


@pytest.fixture
def st(tmp_path: Path) -> ServerState:
    return make_state(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    pg: Postgres = request.getfixturevalue("postgres")
    yield pg.create_database()
