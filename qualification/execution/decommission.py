"""The decommissioning run (``vqual decommission``): the playbook ``decommission.yml`` (mode
``decommission``) with the shipped or given spec; the refusals happen when it plans
(:mod:`qualification.baseline.decommission`), the removal in its one OQ test."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from qualification.execution.qualify import QualifyRequest, QualifySummary, run_qualify

PLAYBOOK = "decommission.yml"


def run_decommission(request: QualifyRequest, evidence_to_check: Path,
                     server: str | None = None, token_file: Path | None = None) -> QualifySummary:
    """Run the decommissioning of ``request.limit``; the bundles of each target are looked
    for in ``evidence_to_check`` (they must verify before anything is removed) and, with
    ``server``, must be held by that evidence server (its token: ``token_file``, else
    ``$VQUAL_SERVER_TOKEN(_FILE)``, which the playbook inherits)."""
    extravars: dict[str, Any] = {
        **request.extravars,
        "vqual_decommission_evidence": str(Path(evidence_to_check).resolve())}
    if server is not None:
        extravars["vqual_decommission_server"] = server
        if token_file is not None:
            extravars["vqual_decommission_token_file"] = str(Path(token_file).resolve())
    return run_qualify(replace(request, playbook=PLAYBOOK, extravars=extravars))
