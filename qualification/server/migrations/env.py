"""Alembic's environment: run the migrations online against the configured URL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context


def _run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None  # set by qualification.server.db._alembic_config
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


# Alembic imports this module to migrate; imported otherwise (a tool walking the package)
# there is no migration context and nothing to do.
if hasattr(context, "config"):
    _run()
