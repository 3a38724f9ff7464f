"""What the transparency log holds: one leaf per accepted seal, record after the seal, and
void. Defined with the client's judging of log proofs in
:mod:`qualification.evidence.logproof` (below the server, so ``vqual selftest`` can use it);
named here for the server's modules.
"""

from __future__ import annotations

from qualification.evidence.logproof import (
    CHECKPOINT_TYPE,
    VOID_TYPE,
    SealedRun,
    after_seal_leaf,
    bundle_leaves,
    leaf_hash,
    read_sealed,
    seal_leaf,
    void_leaf,
)

__all__ = ["CHECKPOINT_TYPE", "VOID_TYPE", "SealedRun", "after_seal_leaf", "bundle_leaves",
           "leaf_hash", "read_sealed", "seal_leaf", "void_leaf"]
