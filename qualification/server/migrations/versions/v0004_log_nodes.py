"""The log's incremental tree state: the root of every complete subtree (``log_nodes``).

A push no longer recomputes the log's root from every entry; it reads the stored subtree
roots and adds the ones its leaves complete (:mod:`qualification.server.merkle`). The nodes of
a log held before this revision are computed here from its entries.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from qualification.server.merkle import rebuild_nodes

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    rebuild_nodes(op.get_bind())


def downgrade() -> None:
    op.drop_table("log_nodes")
