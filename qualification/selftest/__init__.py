"""``vqual selftest``: installation and operational qualification of vqual itself.

Checks that the installed vqual, its dependencies and its installed optional extras are the
versions it declares, that the golden bundles (one per format version) still verify as stored,
and that known-good and known-bad evidence gets the expected verdicts (a fresh bundle, one
edited byte in a record and in a sealed file, a crash-cut last line, a signature copied onto
another run), that the check library decides fixed cases as documented, that every record kind
keeps its golden records, that a rolling patch resumes only a journal of its own steps version,
that a stored time-stamp token verifies only for its digest, root and time, and that the
platform plug-ins vqual ships are registered (every other one listed) and an unknown platform is
refused. The outcome is
written as an evidence bundle of its own (``mode: selftest``), signed by the executor key, that
``vqual verify`` checks like any other. The requirement ids are vqual's own, from
docs/validation.md.

One module per group of checks (``install``, ``evidence``, ``library``, ``kinds``, ``resume``,
``timestamp``, ``platforms``, ``risk``); :func:`~qualification.selftest.run.self_checks` lists them in order.
"""

from __future__ import annotations

from qualification.selftest.base import REQUIREMENTS, Outcome, SelfCheck, repo_golden_dir
from qualification.selftest.evidence import Scratch
from qualification.selftest.run import SelftestSummary, run_selftest, self_checks

__all__ = [
    "REQUIREMENTS",
    "Outcome",
    "Scratch",
    "SelfCheck",
    "SelftestSummary",
    "repo_golden_dir",
    "run_selftest",
    "self_checks",
]
