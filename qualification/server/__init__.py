"""The evidence server (docs/server.md): push, store, pull, a transparency log of seals.

The modules a client needs (:mod:`.files`, :mod:`.leaves`, :mod:`.client`) use the standard
library only, so ``vqual push`` and ``vqual pull`` work without the ``server`` extra; the
server side (:mod:`.app`, :mod:`.db`, :mod:`.service`) and the log proofs need it.
"""
