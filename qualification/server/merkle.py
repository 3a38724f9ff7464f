"""The transparency log's Merkle tree (pymerkle) over the ``log_entries`` table.

pymerkle computes roots and proofs (RFC 6962/9162 hashing: ``0x00`` leaf and ``0x01`` node
prefixes); this class tells it where the leaves are and keeps the tree state incremental: the
root of every complete, aligned subtree of two or more leaves is a row of ``log_nodes``
(level, position), written when its last leaf is appended. A root or proof then reads
O(log n) rows instead of hashing every leaf, and an append writes at most log2(n) rows. The
appends run inside the server's write transaction, so two workers still make one log.

``verified=True`` ignores ``log_nodes`` and recomputes every subtree from the stored leaves;
``vqual serve check`` uses it, so a leaf rewritten in the database (with or without its nodes)
shows against the signed checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pymerkle import BaseMerkleTree
from sqlalchemy.engine import Connection

from qualification.server.db import log_entries, log_nodes


class DbTree(BaseMerkleTree):  # type: ignore[misc]
    """The log's leaves as pymerkle sees them; appends go through :meth:`append_leaf`."""

    def __init__(self, conn: Connection, *, verified: bool = False) -> None:
        self.conn = conn
        self.verified = verified
        self._size: int | None = None
        # pymerkle's own in-memory cache is off: this instance lives for one transaction and
        # the stored nodes are the cache that outlives it.
        super().__init__("sha256", disable_cache=True)
        self._get_subroot = self._stored_subroot

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

    def _stored_subroot(self, offset: int, width: int) -> bytes:
        """The root of leaves ``offset..offset+width-1`` (width a power of two): a stored node
        when the subtree is aligned and complete, else computed from the leaves."""
        level = width.bit_length() - 1
        if self.verified or level == 0 or offset % width:
            return self._get_subroot_uncached(offset, width)  # type: ignore[no-any-return]
        found = self.conn.execute(
            sa.select(log_nodes.c.hash)
            .where(log_nodes.c.level == level, log_nodes.c.pos == offset >> level)
        ).scalar_one_or_none()
        if found is None:  # a log from before the nodes (rebuild_nodes fills them)
            return self._get_subroot_uncached(offset, width)  # type: ignore[no-any-return]
        return bytes.fromhex(found)

    # ours ------------------------------------------------------------------------------
    def append_leaf(self, leaf: bytes, run_id: str, time: str) -> int:
        """Append ``leaf`` (inside the caller's write transaction); returns its index (1-based)."""
        index = self._get_size() + 1
        digest = self.hash_buff(leaf)
        self.conn.execute(
            log_entries.insert().values(
                idx=index, leaf=leaf, leaf_hash=digest.hex(), run_id=run_id, time=time,
            )
        )
        self._size = index
        self._complete_nodes(index - 1, digest)
        return index

    def _complete_nodes(self, pos: int, digest: bytes) -> None:
        """Store the subtree roots the leaf at 0-based ``pos`` completes (a right child closes
        its parent, up the levels)."""
        level, node = 0, digest
        while pos % 2 == 1:
            left = self._stored_subroot((pos - 1) << level, 1 << level)
            node = self.hash_pair(left, node)
            level, pos = level + 1, pos // 2
            self.conn.execute(log_nodes.insert().values(level=level, pos=pos, hash=node.hex()))

    def find(self, leaf_hash: str) -> int | None:
        """The index of the first leaf with ``leaf_hash``, or None."""
        found = self.conn.execute(
            sa.select(sa.func.min(log_entries.c.idx)).where(log_entries.c.leaf_hash == leaf_hash)
        ).scalar_one_or_none()
        return int(found) if found is not None else None


def expected_nodes(conn: Connection) -> dict[tuple[int, int], str]:
    """The ``log_nodes`` rows the stored leaves call for: (level, pos) -> hash (hex)."""
    tree = DbTree(conn, verified=True)
    hashes = [tree.hash_buff(bytes(leaf)) for leaf in conn.execute(
        sa.select(log_entries.c.leaf).order_by(log_entries.c.idx)).scalars()]
    out: dict[tuple[int, int], str] = {}
    level = 0
    while len(hashes) > 1:
        level += 1
        hashes = [tree.hash_pair(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
        out.update({(level, pos): h.hex() for pos, h in enumerate(hashes)})
    return out


def stored_nodes(conn: Connection) -> dict[tuple[int, int], str]:
    rows = conn.execute(sa.select(log_nodes.c.level, log_nodes.c.pos, log_nodes.c.hash))
    return {(int(r.level), int(r.pos)): str(r.hash) for r in rows}


def rebuild_nodes(conn: Connection) -> int:
    """Recompute ``log_nodes`` from the stored leaves (a migration; returns the rows written)."""
    conn.execute(log_nodes.delete())
    rows = [{"level": level, "pos": pos, "hash": h}
            for (level, pos), h in expected_nodes(conn).items()]
    if rows:
        conn.execute(log_nodes.insert(), rows)
    return len(rows)
