"""The transparency log's Merkle tree (pymerkle) over the ``log_entries`` table.

pymerkle computes roots and proofs (RFC 6962/9162 hashing: ``0x00`` leaf and ``0x01`` node
prefixes); this class only tells it where the leaves are. One instance per transaction: it
reads through that transaction's connection, and its subroot cache is off, so a leaf rewritten
in the database changes every root computed after it (which a client's consistency check then
shows).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pymerkle import BaseMerkleTree
from sqlalchemy.engine import Connection

from qualification.server.db import log_entries


class DbTree(BaseMerkleTree):  # type: ignore[misc]
    """The log's leaves as pymerkle sees them; appends go through :meth:`append_leaf`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._size: int | None = None
        super().__init__("sha256", disable_cache=True)

    # pymerkle's storage interface ------------------------------------------------------
    def _encode_entry(self, data: Any) -> bytes:
        return bytes(data)

    def _store_leaf(self, data: Any, digest: bytes) -> int:
        raise NotImplementedError("append through append_leaf, which records the run")

    def _get_leaf(self, index: int) -> bytes:
        leaf = self.conn.execute(
            sa.select(log_entries.c.leaf).where(log_entries.c.idx == index)
        ).scalar_one()
        return self.hash_buff(bytes(leaf))  # type: ignore[no-any-return]

    def _get_leaves(self, offset: int, width: int) -> Iterable[bytes]:
        rows = self.conn.execute(
            sa.select(log_entries.c.leaf)
            .where(log_entries.c.idx > offset, log_entries.c.idx <= offset + width)
            .order_by(log_entries.c.idx)
        ).scalars()
        # Hashed from the stored leaf, not read from leaf_hash: the root answers for the data.
        return [self.hash_buff(bytes(leaf)) for leaf in rows]

    def _get_size(self) -> int:
        if self._size is None:
            self._size = int(
                self.conn.execute(sa.select(sa.func.count()).select_from(log_entries)).scalar_one()
            )
        return self._size

    # ours ------------------------------------------------------------------------------
    def append_leaf(self, leaf: bytes, run_id: str, time: str) -> int:
        """Append ``leaf`` (inside the caller's write transaction); returns its index (1-based)."""
        index = self._get_size() + 1
        self.conn.execute(
            log_entries.insert().values(
                idx=index, leaf=leaf, leaf_hash=self.hash_buff(leaf).hex(), run_id=run_id,
                time=time,
            )
        )
        self._size = index
        return index

    def find(self, leaf_hash: str) -> int | None:
        """The index of the first leaf with ``leaf_hash``, or None."""
        found = self.conn.execute(
            sa.select(sa.func.min(log_entries.c.idx)).where(log_entries.c.leaf_hash == leaf_hash)
        ).scalar_one_or_none()
        return int(found) if found is not None else None
