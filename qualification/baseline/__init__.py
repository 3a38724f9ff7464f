"""Baselines: reading a qualified state back from a signed bundle, and drift.

``master`` reads fingerprints (and a Master-VM's reference) from a bundle that verifies;
``drift`` compares a live state with a baseline bundle. The fingerprint itself (its format,
its comparison, its record) is the check library's vocabulary,
:mod:`qualification.checks.fingerprint_model`, re-exported here; the clone and drift runs that
use this package are the run service's (:mod:`qualification.execution`).
"""

from __future__ import annotations

from qualification.checks.fingerprint_model import (
    FINGERPRINT_KIND,
    FINGERPRINT_SCHEMA,
    AllowedDifferences,
    Difference,
    Fingerprint,
    SizeRange,
    compare,
    fingerprint_record,
    fingerprints_from_records,
    make_fingerprint,
    merge,
)

__all__ = [
    "FINGERPRINT_KIND",
    "FINGERPRINT_SCHEMA",
    "AllowedDifferences",
    "Difference",
    "Fingerprint",
    "SizeRange",
    "compare",
    "fingerprint_record",
    "fingerprints_from_records",
    "make_fingerprint",
    "merge",
]
