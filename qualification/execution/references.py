"""What a check compares against, read for it: the check library never reads a bundle.

A clone's ``clone_fingerprint`` test compares with its master's fingerprint. The plan records
the reference (``master``: bundle, seal, subject, digest); here the fingerprint is read back
from that bundle, once per run and pinned to the seal verified when the run was planned, and
handed to the check as ``master_fingerprint``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qualification.checks.clone import CLONE_FINGERPRINT, MASTER_FINGERPRINT
from qualification.checks.fingerprint_model import (
    FINGERPRINT_KIND,
    Fingerprint,
    fingerprints_from_records,
)
from qualification.evidence.reader import read_bundle


@functools.lru_cache(maxsize=8)
def master_fingerprints(bundle: str, seal: str) -> dict[str, Fingerprint]:
    """The fingerprints of the master bundle, read once per run and pinned to its seal.

    The bundle was verified before the run started (``qualification.execution.clone``); here
    it is only read back, and its seal must still be the one that was verified.

    Raises:
        ValueError: the bundle's seal is not ``seal``.
    """
    read = read_bundle(Path(bundle))
    if read.seal_digest != seal:
        raise ValueError(
            f"master bundle {bundle}: seal {read.seal_digest} is not {seal}, "
            "the one verified when the run was planned"
        )
    return fingerprints_from_records(
        [(r.line, r.data) for r in read.of_kind(FINGERPRINT_KIND)],
        where=f"{bundle}/records.jsonl",
    )


def with_references(check: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``params`` with what check ``check`` compares against, when it needs something read.

    A bundle that cannot be read is handed over as the exception it raised, so the check
    reports it as its ``error`` (as any failure to observe), never as a comparison.
    """
    reference = params.get("master")
    if check != CLONE_FINGERPRINT or not isinstance(reference, Mapping):
        return params
    try:
        bundle, seal, subject = (str(reference[k]) for k in ("bundle", "seal", "subject"))
        found: Any = master_fingerprints(bundle, seal).get(subject)
    except Exception as exc:  # noqa: BLE001 - whatever reading failed with is the test's error
        found = exc
    return {**params, MASTER_FINGERPRINT: found}
