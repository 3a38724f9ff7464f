"""What a self check is, and vqual's own requirements it checks (docs/validation.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: vqual's own requirements (docs/validation.md) that ``vqual selftest`` checks.
REQUIREMENTS = {
    "VQ-01": "vqual and its dependencies are installed in the declared versions",
    "VQ-02": "bundles of every format version ever written still verify",
    "VQ-03": "complete, untouched evidence verifies valid",
    "VQ-04": "any edit of a record or a sealed file makes evidence invalid",
    "VQ-05": "a crashed run is reported incomplete, not valid",
    "VQ-06": "a signature cannot be moved to another run",
    "VQ-07": "checks decide observed values as documented",
    "VQ-19": "a run's exit code says its verdict; a run with planned tests not executed never "
    "exits 0",
    "VQ-20": "a high-risk change runs only with an OQ canary, or with a waiver whose reason is "
    "recorded",
    "VQ-24": "a platform is found only through the platform registry; one that is not "
    "registered is refused",
    "VQ-25": "every record kind is declared once; each kind's records keep their bytes, rows "
    "and audit lines",
    "VQ-26": "a rolling patch resumes only a journal written with the same version of its "
    "step table",
    "VQ-28": "a missing optional platform library is named with the extra that installs it; "
    "an installed one is in its declared version",
    "VQ-35": "a trust store counts only when the pinned trust root signed every version of "
    "it; one re-signed by another trust-admin is refused",
    "VQ-36": "a record is judged by the trust store version in force at its time; a rotated-"
    "out root signs no later version",
    "VQ-29": "a time-stamp token is accepted only for its digest, from a trusted TSA, with a "
    "time inside the window",
    "VQ-41": "a sealed run and each signature carry a time-stamp token that holds; a dropped "
    "or untrusted one is refused",
    "VQ-44": "format v1 verifies as legacy; format v2 refuses JUnit and report placeholders",
    "VQ-46": "the keys exported for inspectors verify the records with securesystemslib alone",
    "VQ-47": "a testinfra suite runs as written: each test function is one result with its "
    "outcome, message and time; its urs markers trace it to URS ids",
    "VQ-56": "a target is qualified at the level of the most critical application it or its "
    "cluster carries, and that level selects its tests",
    "VQ-49": "the slices of a sliced job verify as a change, anchored by the join citing them",
    "VQ-75": "the rolling-patch planner never puts an HA pair in one fire compartment",
    "VQ-76": "a bond with a member's link down or a multipath device with a failed path fails "
    "its check, naming the member or path with the measured states",
    "VQ-63": "the evidence server stores only what verifies: a tampered push is refused and "
    "the refusal is in its audit trail",
    "VQ-61": "a run's seal is proven included in the evidence server's transparency log under "
    "a checkpoint signed by a log key; a proof that does not match is refused",
    "VQ-71": "a conversion is compared with its source's signed baseline: a changed, removed "
    "or added application data file fails by name; only declared differences are allowed",
    "VQ-73": "a decommissioning is refused before any change while a dependent is declared, "
    "a bundle does not verify or backups are not observed retained",
    "VQ-65": "failed logins lock a browser user id in the database; a browser user's key no "
    "trust-admin signed cannot sign",
    "VQ-93": "a check.result for a test its run.start did not plan makes the bundle invalid, "
    "naming the test",
    "VQ-88": "a failover record whose marker read back on the other host differs from the one "
    "written before the host failed fails; a step that could not be taken is not-executed",
}


@dataclass
class Outcome:
    """What one self check found: whether it holds, the measured values, and why not."""

    ok: bool
    observed: Any
    reason: str | None = None


@dataclass(frozen=True)
class SelfCheck:
    test_id: str
    title: str
    protocol: str
    requirement: str
    method: str
    expected: dict[str, Any]
    run: Callable[[], Outcome]
    #: why the check cannot be performed here (recorded not-executed), or None
    not_executed: str | None = None


def repo_golden_dir() -> Path | None:
    """The golden bundles shipped in the source tree, if vqual runs from one."""
    candidate = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "golden"
    return candidate if candidate.is_dir() else None


def never_run() -> Outcome:
    """The run of a check that is recorded not-executed (it is never called)."""
    return Outcome(False, None)
