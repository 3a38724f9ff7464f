"""A pause of Python's cyclic garbage collector around work that allocates many small objects
and frees them by reference counting (reading a large spec, rendering a large run).

In a process that holds a lot (Ansible's main process holds the whole play), every full
collection walks all of it, and such work triggers many: the report of 4,000 results took
2.5x as long with the collector on (docs/performance.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside: what exists now is frozen out of later collections too,
    and the collector is back as it was on the way out."""
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()
