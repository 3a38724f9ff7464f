"""``vqual migrate summary``: the run that sums up a platform migration (docs/conversion.md,
"Migrating a platform").

A migration is one change: for each VM its source baseline (``vqual convert baseline``), its
conversion qualified by difference (``vqual convert qualify``, mode ``conversion``, citing
the baseline's seal) and the decommissioning of its source (``vqual decommission``). The
summary verifies the whole change, finds for each VM of the plan (source -> target) its
latest conversion run and the baseline it cites and the latest decommissioning run of the
source, refuses when one is missing or did not finish, and writes a sealed run of mode
``migration`` whose ``run.start`` carries ``migration: {vms: [...]}`` with every cited seal.
``vqual verify evidence/<change>`` checks those citations (qualification.evidence.change).
Like a join it plans and runs no test; what the migration found is the worst verdict of the
cited runs, which its summary and exit code give (a source not yet decommissioned counts as
not executed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.errors import (
    BadInputError,
    EvidenceIncompleteError,
    exit_code_for_verdict,
)
from qualification.evidence.change import is_change_dir, run_start_of
from qualification.evidence.result import INCOMPLETE, VerificationResult
from qualification.execution.citing import open_verified_change, seal_citing_run, verified_runs
from qualification.spec.change import validate_run_id
from qualification.timeutil import new_run_id, utc_now
from qualification.verdict import Verdict, overall

__all__ = [
    "MigrationRequest", "MigrationSummary", "checked_runs", "parse_vm", "run_migration_summary",
    "vm_entry",
]

SCHEMA = "vqual.migration/v1"
REFUSED = "the migration's change does not verify, no summary written"


def parse_vm(text: str) -> tuple[str, str]:
    """``SOURCE=TARGET`` as (source, target).

    Raises:
        BadInputError: not two non-empty names around one ``=``.
    """
    source, sep, target = text.partition("=")
    if not sep or not source.strip() or not target.strip() or "=" in target:
        raise BadInputError(f"--vm {text!r}: give SOURCE=TARGET (inventory names)")
    return source.strip(), target.strip()


@dataclass
class MigrationRequest:
    change_dir: Path
    vms: Sequence[tuple[str, str]]
    key_file: Path
    passphrase_reader: Callable[[], bytes]
    state_dir: Path
    initiator: str
    run_id: str | None = None


@dataclass
class MigrationSummary:
    change_id: str
    run_id: str
    bundle: Path
    seal: str
    vms: list[dict[str, Any]]
    #: the migration's verdict: the worst of the cited runs' (not-executed: a source kept)
    verdict: str

    @property
    def exit_code(self) -> int:
        return exit_code_for_verdict(self.verdict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "change_id": self.change_id, "run_id": self.run_id,
            "bundle": str(self.bundle), "seal": self.seal, "vms": self.vms,
            "verdict": self.verdict, "exit_code": self.exit_code,
        }

    def to_text(self) -> str:
        lines = [
            (f"vqual migrate summary: {self.change_id} run {self.run_id}: {len(self.vms)} VM(s), "
             f"{self.verdict.upper()} (the worst of the cited runs)"),
            f"  evidence: {self.bundle}",
            f"  seal:     {self.seal}",
        ]
        for vm in self.vms:
            conv, decom = vm["conversion"], vm["decommission"]
            gone = (f"source decommissioned by {decom['run']} {decom['verdict']}" if decom
                    else "source not decommissioned")
            lines.append(
                f"  {vm['source']} -> {vm['target']}: conversion {conv['run']} {conv['verdict']} "
                f"(seal {conv['seal'][:16]}), baseline {vm['baseline']['run']}; {gone}")
        return "\n".join(lines)


def _cited(run: VerificationResult) -> dict[str, Any]:
    return {"run": run.path.name, "seal": run.seal_digest, "verdict": run.verdict}


def _latest(runs: Sequence[VerificationResult], want: Callable[[dict[str, Any]], bool],
            what: str) -> VerificationResult | None:
    """The latest run whose ``run.start`` ``want`` accepts; refused when it did not finish.

    Raises:
        EvidenceIncompleteError: that run is not sealed.
    """
    found = [r for r in runs if want(run_start_of(r))]
    if not found:
        return None
    last = max(found, key=lambda r: (r.started or "", r.path.name))
    if last.status == INCOMPLETE or not last.seal_digest:
        raise EvidenceIncompleteError(f"the {what} run {last.path.name} is not sealed: it did "
                                      "not finish")
    return last


def _target_names(start: dict[str, Any]) -> set[str]:
    return {str(t.get("name")) for t in start.get("targets") or [] if isinstance(t, dict)}


def vm_entry(runs: Sequence[VerificationResult], source: str, target: str) -> dict[str, Any]:
    """The summary's entry for one VM: its baseline, conversion and decommissioning runs.

    Raises:
        EvidenceIncompleteError: no sealed conversion of ``source`` onto ``target`` here, or
            its baseline is not a run of this change.
    """
    def is_conversion(start: dict[str, Any]) -> bool:
        block = start.get("conversion")
        return (start.get("mode") == "conversion" and isinstance(block, dict)
                and (block.get("source") or {}).get("subject") == source
                and target in _target_names(start))

    def is_decommission(start: dict[str, Any]) -> bool:
        block = start.get("decommission")
        return (start.get("mode") == "decommission" and isinstance(block, dict)
                and source in (block.get("targets") or {}))

    conversion = _latest(runs, is_conversion, f"conversion of {source} onto {target}")
    if conversion is None:
        raise EvidenceIncompleteError(
            f"no conversion of {source} onto {target} here (vqual convert qualify --limit "
            f"{target} with a baseline of {source}, under this change)")
    baseline_seal = run_start_of(conversion)["conversion"].get("baseline_seal")
    baseline = next((r for r in runs if r.seal_digest == baseline_seal), None)
    if baseline is None:
        raise EvidenceIncompleteError(
            f"the baseline of {source} that conversion {conversion.path.name} cites (seal "
            f"{str(baseline_seal)[:16]}) is not a run of this change: take the baselines "
            "under the migration's change")
    decommission = _latest(runs, is_decommission, f"decommissioning of {source}")
    return {
        "source": source,
        "target": target,
        "baseline": {"run": baseline.path.name, "seal": baseline.seal_digest},
        "conversion": _cited(conversion),
        "decommission": None if decommission is None else _cited(decommission),
    }


def migration_verdict(vms: Sequence[dict[str, Any]]) -> str:
    """The worst verdict of the cited conversions and decommissionings; a source that was
    not decommissioned counts as not executed."""
    counts: dict[str, int] = {}
    for vm in vms:
        for step in (vm["conversion"], vm["decommission"]):
            verdict = step["verdict"] if step else Verdict.NOT_EXECUTED.value
            counts[str(verdict)] = counts.get(str(verdict), 0) + 1
    return overall(counts).value


def checked_runs(change_dir: Path, trust: Any) -> list[VerificationResult]:
    """Every run of the change, which must verify.

    Raises:
        EvidenceInvalidError: the change (a conversion bundle, a baseline...) does not verify.
    """
    return verified_runs(change_dir, trust, REFUSED)


def run_migration_summary(request: MigrationRequest) -> MigrationSummary:
    """Verify the change, find each VM's runs, write the sealed ``migration`` run.

    Raises:
        BadInputError: no VM, a VM named twice, not a change directory; nothing written.
        EvidenceInvalidError: the change does not verify.
        EvidenceIncompleteError: a VM's conversion or baseline is missing or did not finish.
    """
    if not request.vms:
        raise BadInputError("name the migrated VMs with --vm SOURCE=TARGET")
    sources = [s for s, _ in request.vms]
    if len(set(sources)) != len(sources):
        raise BadInputError("a source VM is named twice in --vm")
    change_dir = Path(request.change_dir)
    if not is_change_dir(change_dir):
        raise BadInputError(f"{change_dir} is not a change directory (evidence/<change id>)")
    run_id = validate_run_id(request.run_id) if request.run_id else new_run_id(utc_now())
    change = open_verified_change(change_dir, request.state_dir, request.key_file,
                                  request.passphrase_reader, REFUSED)
    vms = [vm_entry(change.runs, source, target) for source, target in request.vms]
    bundle, seal = seal_citing_run(change, run_id=run_id, state_dir=request.state_dir,
                                   initiator=request.initiator, mode="migration",
                                   cited={"migration": {"vms": vms}})
    return MigrationSummary(change_id=change_dir.name, run_id=run_id, bundle=bundle, seal=seal,
                            vms=vms, verdict=migration_verdict(vms))
