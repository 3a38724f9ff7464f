"""The registry of record kinds (docs/formats.md, "Record kinds: the registry").

One module per kind declares it (:class:`~qualification.evidence.kinds.base.RecordKind`:
payload type, verification rule, report rows, audit-trail line); :data:`REGISTRY` lists them.
The writer (``BundleWriter``), the verifier (``vqual verify``), the report model and the
audit trail (``vqual audit``) ask :func:`kind_of` instead of comparing kind strings.

Adding a kind: write its module here, add its ``KIND`` to :data:`_ALL`, document it in
docs/formats.md and add its golden fixture ``tests/fixtures/golden/kinds/<name>.json``
(``tests/unit/evidence/test_kinds.py`` refuses a kind without one).
"""

from __future__ import annotations

from types import MappingProxyType

from qualification.evidence.kinds import (
    action,
    check_result,
    deviation_raised,
    deviation_waiver,
    fingerprint,
    host_skipped,
    run_end,
    run_start,
    signature,
    timestamp,
)
from qualification.evidence.kinds.base import AuditLine, ChainView, Deviation, RecordKind

_ALL: tuple[RecordKind, ...] = (
    run_start.KIND,
    check_result.KIND,
    action.KIND,
    host_skipped.KIND,
    fingerprint.KIND,
    deviation_raised.KIND,
    deviation_waiver.KIND,
    run_end.KIND,
    signature.KIND,
    timestamp.KIND,
)

#: Every known kind by name.
REGISTRY: MappingProxyType[str, RecordKind] = MappingProxyType({k.name: k for k in _ALL})

#: Kind names as constants, for the few places that name one kind.
RUN_START = run_start.KIND.name
RUN_END = run_end.KIND.name
CHECK_RESULT = check_result.KIND.name
SIGNATURE = signature.KIND.name
TIMESTAMP = timestamp.KIND.name
WAIVER = deviation_waiver.KIND.name
ACTION = action.KIND.name
FINGERPRINT = fingerprint.KIND.name
HOST_SKIPPED = host_skipped.KIND.name
DEVIATION_RAISED = deviation_raised.KIND.name


def kind_of(name: object) -> RecordKind | None:
    """The registered kind called ``name``, or None."""
    return REGISTRY.get(name) if isinstance(name, str) else None


__all__ = [
    "ACTION",
    "CHECK_RESULT",
    "DEVIATION_RAISED",
    "FINGERPRINT",
    "HOST_SKIPPED",
    "REGISTRY",
    "RUN_END",
    "RUN_START",
    "SIGNATURE",
    "TIMESTAMP",
    "WAIVER",
    "AuditLine",
    "ChainView",
    "Deviation",
    "RecordKind",
    "kind_of",
]
