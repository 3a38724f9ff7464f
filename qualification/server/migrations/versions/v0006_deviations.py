"""Deviations on the server: a change's deviations pushed from a controller (with the sites
they belong to) and their waivers (approvals signed as ``vqual deviation approve`` signs them,
pushed or made in the browser), so the browser can list and approve them and the controller
pulls the waivers back.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deviations",
        sa.Column("change_id", sa.String(64), primary_key=True),
        sa.Column("deviation_id", sa.String(64), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("sites", sa.Text, nullable=False),
        sa.Column("pushed", sa.String(32), nullable=False),
        sa.Column("pushed_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "waivers",
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


def downgrade() -> None:
    op.drop_table("waivers")
    op.drop_table("deviations")
