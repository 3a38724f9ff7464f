"""Sites and retention: an account's sites, a run's sites, and the tombstones of purged runs.

A run's sites come from its sealed ``inventory.json``; runs held before this revision get
theirs from the store when first asked (``runs.sites`` stays NULL until then). Accounts made
before it belong to no site: with sites configured, give the pipeline a new token with
``--site``.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("sites", sa.Text, nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("sites", sa.Text, nullable=True))
    op.create_table(
        "tombstones",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("change_id", sa.String(64), nullable=False),
        sa.Column("seal", sa.String(64), nullable=False, unique=True),
        sa.Column("pushed", sa.String(32), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("signer", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tombstones")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("sites")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("sites")
