"""The decommissioning run (``vqual decommission``): the playbook ``decommission.yml`` (mode
``decommission``) with the shipped or given spec; the refusals happen when it plans
(:mod:`qualification.baseline.decommission`), the removal in its one OQ test."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qualification.execution.qualify import QualifyRequest, QualifySummary, run_qualify

PLAYBOOK = "decommission.yml"


def run_decommission(request: QualifyRequest, evidence_to_check: Path) -> QualifySummary:
    """Run the decommissioning of ``request.limit``; the bundles of each target are looked
    for in ``evidence_to_check`` (they must verify before anything is removed)."""
    extravars = {**request.extravars,
                 "vqual_decommission_evidence": str(Path(evidence_to_check).resolve())}
    return run_qualify(replace(request, playbook=PLAYBOOK, extravars=extravars))
