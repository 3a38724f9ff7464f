"""Runs that cite other runs of their change and run no test: ``vqual join`` (the slices of a
sliced job) and ``vqual migrate summary`` (a platform migration's runs).

Both verify the whole change first, through the trust ``vqual qualify`` would judge by,
signed by an executor key, and then write a sealed run whose ``run.start`` carries what they
cite by seal. Nothing is planned or run, so the run's own counts are empty and its verdict is
the worst of no result (pass), as ``vqual verify`` recounts it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.config import config_citation
from qualification.errors import EvidenceInvalidError
from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.change import verify_change
from qualification.evidence.kinds import RUN_START
from qualification.evidence.result import INVALID, VerificationResult
from qualification.execution.qualify import _check_executor_key
from qualification.execution.recorder import add_renderings, open_signer_with
from qualification.execution.run_start import run_start_data
from qualification.review.pinned import TrustChoice, choose_trust
from qualification.signing import Signer, TrustStore
from qualification.state import trust_digest
from qualification.verdict import Verdict, zero_counts

__all__ = ["VerifiedChange", "open_verified_change", "seal_citing_run", "verified_runs"]


@dataclass(frozen=True)
class VerifiedChange:
    """A change directory that verified, with the trust it was judged by and the signer of
    the run that will cite its runs."""

    change_dir: Path
    choice: TrustChoice
    signer: Signer
    runs: list[VerificationResult]


def verified_runs(change_dir: Path, trust: TrustStore, refused: str) -> list[VerificationResult]:
    """Every run of the change, which must verify.

    Raises:
        EvidenceInvalidError: ``refused`` and the change's first problem.
    """
    checked = verify_change(change_dir, trust)
    if checked.status == INVALID:
        raise EvidenceInvalidError(f"{refused}: {checked.problems[0]}", where=str(change_dir))
    return checked.runs


def open_verified_change(change_dir: Path, state_dir: Path, key_file: Path,
                         passphrase_reader: Callable[[], bytes], refused: str) -> VerifiedChange:
    """Judge trust as ``vqual qualify`` does (the pinned root, or legacy trust asked for),
    open the executor key, and verify the change.

    Raises:
        TrustError, BadInputError: as :func:`choose_trust` and the key.
        EvidenceInvalidError: the change does not verify (``refused`` leads the message).
    """
    choice = choose_trust(state_dir)
    signer, _ = open_signer_with(key_file, passphrase_reader)
    _check_executor_key(choice.store, signer.keyid)
    return VerifiedChange(change_dir, choice, signer,
                          verified_runs(change_dir, choice.store, refused))


def seal_citing_run(change: VerifiedChange, *, run_id: str, state_dir: Path, initiator: str,
                    mode: str, cited: Mapping[str, Any]) -> tuple[Path, str]:
    """Write and seal the run of ``mode`` whose ``run.start`` carries ``cited``.

    Returns:
        The bundle's path and its seal.
    """
    root, change_id = change.change_dir.parent, change.change_dir.name
    start = run_start_data(
        mode=mode, spec=None, data_files=[], inventory_digest=None,
        trust={"digest": trust_digest(state_dir), "version": change.choice.version},
        targets=[], planned=[], prev_run_seal=latest_seal(root, change_id), approval=None,
        config=config_citation(state_dir),
    )
    if (root_cited := change.choice.citation()) is not None:
        start["trust_root"] = root_cited
    writer = BundleWriter.create(root, change_id, run_id, change.signer, initiator)
    writer.append(RUN_START, {**start, **cited})
    add_renderings(writer)
    seal = writer.seal(zero_counts(), planned=0, executed=0, verdict=Verdict.PASS.value)
    return writer.path, seal
