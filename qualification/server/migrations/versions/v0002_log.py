"""The transparency log (entries, signed checkpoints) and voids.

Runs stored before this revision are logged here, in the order they were pushed, each by its
seal leaf (:func:`qualification.server.leaves.seal_leaf`), so every held seal is in the log.
Their first checkpoint is signed when the server next starts.

Revision ID: 0002
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from qualification.server.leaves import seal_leaf

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    entries = op.create_table(
        "log_entries",
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False, index=True),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("time", sa.String(32), nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "voids",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("seal", sa.String(64), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("signer", sa.String(128), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
    )
    conn = op.get_bind()
    held = conn.execute(
        sa.text("SELECT run_id, change_id, seal, pushed FROM runs ORDER BY pushed, run_id")
    ).all()
    rows = []
    for idx, (run_id, change_id, seal, pushed) in enumerate(held, start=1):
        leaf = seal_leaf(change_id, run_id, seal)
        # The leaf hash of RFC 6962 (what pymerkle computes): SHA-256 of 0x00 || leaf.
        digest = hashlib.sha256(b"\x00" + leaf).hexdigest()
        rows.append({"idx": idx, "leaf": leaf, "leaf_hash": digest, "run_id": run_id,
                     "time": pushed})
    if rows:
        op.bulk_insert(entries, rows)


def downgrade() -> None:
    op.drop_table("voids")
    op.drop_table("checkpoints")
    op.drop_table("log_entries")
