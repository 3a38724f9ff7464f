"""Runs compared with a signed baseline (``vqual drift``, ``vqual convert qualify``): the
request they share and the scratch directory their derived spec is written to.

Each derives a spec from its baseline (:mod:`qualification.baseline.drift`,
:mod:`qualification.baseline.conversion`), writes it and the baseline's sealed data files to
a scratch directory, and runs its playbook with it as an ordinary qualification run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qualification.baseline.drift import Baseline
from qualification.execution.inventory import VaultOptions
from qualification.execution.qualify import QualifyRequest, QualifySummary, run_qualify


@dataclass
class DerivedRunRequest:
    """What a run compared with the signed baseline ``baseline`` takes; the rest as
    :class:`~qualification.execution.qualify.QualifyRequest`."""

    baseline: Path
    inventory: Path
    change_id: str | None
    key_file: Path
    passphrase_reader: Callable[[], bytes]
    evidence_dir: Path
    state_dir: Path
    initiator: str
    run_id: str | None = None
    limit: str | None = None
    progress: Callable[[Any], None] | None = None
    vault: VaultOptions = field(default_factory=VaultOptions)
    forks: int | None = None

    def to_qualify_request(self, spec: Path, playbook: str,
                           extravars: Mapping[str, Any]) -> QualifyRequest:
        """The qualification run of ``playbook`` with the derived ``spec``."""
        return QualifyRequest(
            inventory=self.inventory,
            spec=spec,
            change_id=self.change_id,
            key_file=self.key_file,
            passphrase_reader=self.passphrase_reader,
            evidence_dir=self.evidence_dir,
            state_dir=self.state_dir,
            initiator=self.initiator,
            run_id=self.run_id,
            limit=self.limit,
            progress=self.progress,
            playbook=playbook,
            extravars=dict(extravars),
            vault=self.vault,
            forks=self.forks,
        )


def run_derived(
    request: DerivedRunRequest,
    baseline: Baseline,
    *,
    name: str,
    spec: Mapping[str, Any],
    data_files: Mapping[str, Any],
    playbook: str,
    extravars: Mapping[str, Any],
) -> QualifySummary:
    """Write ``spec`` (derived from ``baseline``) and the baseline's ``data_files`` to a
    scratch directory, run ``playbook`` with them, remove the directory afterwards."""
    work = Path(tempfile.mkdtemp(prefix=f"vqual-{name}-"))
    try:
        spec_path = work / f"{name}-spec.yaml"
        spec_path.write_text(yaml.safe_dump(dict(spec), sort_keys=False))
        baseline.write_data_files(dict(data_files), work)
        return run_qualify(request.to_qualify_request(spec_path, playbook, extravars))
    finally:
        shutil.rmtree(work, ignore_errors=True)
