"""Conversion runs (``vqual convert``): the source baseline before a conversion, and the
target's qualification by difference after it (docs/conversion.md).

What is compared and what may differ is :mod:`qualification.baseline.conversion`; here the
runs are made: the baseline is an ordinary qualification run of a spec with fingerprint tests
(its ``conversion`` section says what a conversion may change), the qualification a run of
the playbook ``convert.yml`` (mode ``conversion``) with the spec derived from the baseline's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.baseline.conversion import (
    conversion_spec,
    rules_of,
    source_of,
)
from qualification.baseline.drift import Baseline, load_baseline
from qualification.errors import BadInputError
from qualification.evidence.reader import read_bundle
from qualification.execution.derived import DerivedRunRequest, run_derived
from qualification.execution.qualify import QualifySummary
from qualification.spec.model import target_kinds

SCHEMA = "vqual.conversion/v1"
PLAYBOOK = "convert.yml"


@dataclass
class ConversionRequest(DerivedRunRequest):
    """A conversion's qualification: ``baseline`` the source's, ``limit`` the target."""


@dataclass
class ConversionSummary:
    source: str
    baseline: Path
    baseline_seal: str
    change_id: str
    run_id: str
    bundle: Path
    verdict: str
    verification: str
    failing: list[dict[str, Any]] = field(default_factory=list)
    allowed: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "source": self.source,
            "baseline": {"bundle": str(self.baseline), "seal": self.baseline_seal},
            "change_id": self.change_id,
            "run_id": self.run_id,
            "bundle": str(self.bundle),
            "verdict": self.verdict,
            "verification": self.verification,
            "differences": list(self.failing),
            "allowed": list(self.allowed),
            "errors": list(self.errors),
            "exit_code": self.exit_code,
        }

    def to_text(self) -> str:
        head = (
            f"vqual convert qualify: {self.change_id} run {self.run_id}: {self.verdict.upper()}: "
            f"{len(self.failing)} difference(s) not allowed, {len(self.allowed)} allowed, "
            f"from source {self.source} (baseline seal {self.baseline_seal[:16]})"
        )
        lines = [head]
        lines += [f"  not allowed: {d['reason']}" for d in self.failing]
        lines += [f"  allowed: {d['reason']}" for d in self.allowed]
        lines += [f"  error: {e}" for e in self.errors]
        lines.append(f"  evidence: {self.bundle} ({self.verification})")
        return "\n".join(lines)


def check_baseline(path: Path, state_dir: Path) -> Baseline:
    """The source baseline, verified, with one fingerprint and a readable ``conversion``
    section; refused before anything runs.

    Raises:
        EvidenceInvalidError: it does not verify or did not finish (exit 1).
        BadInputError: not exactly one fingerprint; a malformed ``conversion`` section.
    """
    baseline = load_baseline(Path(path), state_dir)
    source_of(baseline)
    rules_of(baseline)
    return baseline


def run_conversion(request: ConversionRequest) -> ConversionSummary:
    """Verify the source baseline, run ``convert.yml`` on the target, summarise the bundle.

    Exit codes: the conversion bundle's verdict: 0 no difference beyond the allowed ones,
    1 a difference not allowed (or the baseline does not verify), 2 bad input, 3 a test
    could not be performed, 4 the target could not be observed.
    """
    if not request.limit:
        raise BadInputError("name the conversion target with --limit")
    baseline = check_baseline(request.baseline, request.state_dir)
    summary = _run_playbook(request, baseline)
    failing, allowed, errors = _differences(summary.bundle)
    return ConversionSummary(
        source=source_of(baseline).subject,
        baseline=baseline.path,
        baseline_seal=baseline.seal,
        change_id=summary.change_id,
        run_id=summary.run_id,
        bundle=summary.bundle,
        verdict=summary.verdict,
        verification=summary.verification,
        failing=failing,
        allowed=allowed,
        errors=errors,
        exit_code=summary.exit_code,
    )


def _run_playbook(request: ConversionRequest, baseline: Baseline) -> QualifySummary:
    """Run the conversion playbook with the spec derived from ``baseline`` and its data
    files."""
    derived = conversion_spec(baseline, target_kinds())
    return run_derived(request, baseline, name="conversion", spec=derived,
                       data_files=derived.get("data_files") or {}, playbook=PLAYBOOK,
                       extravars={"vqual_conversion_baseline": str(baseline.path.resolve())})


def _differences(bundle: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The differences a conversion bundle records, not allowed and allowed, and what it
    could not observe."""
    failing: list[dict[str, Any]] = []
    allowed: list[dict[str, Any]] = []
    errors: list[str] = []
    for rec in read_bundle(bundle).check_results:
        data = rec.data
        test_id = str(data.get("test_id"))
        if data.get("verdict") in ("error", "not-executed"):
            errors.append(f"{data.get('target')}: {test_id}: {data.get('reason')}")
            continue
        if test_id.count(":") < 2:
            continue  # a summary result, not one difference
        what, where = test_id.split(":", 2)[1:]
        item = {
            "target": data.get("target"),
            "what": what,
            "where": where,
            "test_id": test_id,
            "source": (data.get("expected") or {}).get("value"),
            "target_value": data.get("observed"),
            "reason": data.get("reason"),
        }
        (failing if data.get("verdict") == "fail" else allowed).append(item)
    return failing, allowed, errors
