"""The browser review: people's accounts (password hash, sealed signing key), sessions held
in the database (shared by every worker), and login attempts (rate limit and lockout).

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("printed_name", sa.String(128), nullable=False),
        sa.Column("roles", sa.String(128), nullable=False),
        sa.Column("sites", sa.String(512), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("keyid", sa.String(64), nullable=True),
        sa.Column("sealed_key", sa.LargeBinary, nullable=True),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("disabled", sa.String(32), nullable=True),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False, index=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created", sa.String(32), nullable=False),
        sa.Column("last_seen", sa.String(32), nullable=False),
        sa.Column("ended", sa.String(32), nullable=True),
        sa.Column("address", sa.String(64), nullable=False),
    )
    op.create_table(
        "web_logins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.String(32), nullable=False, index=True),
        sa.Column("user_id", sa.String(64), nullable=False, index=True),
        sa.Column("address", sa.String(64), nullable=False, index=True),
        sa.Column("ok", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("web_logins")
    op.drop_table("web_sessions")
    op.drop_table("web_users")
