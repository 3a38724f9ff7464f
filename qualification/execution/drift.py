"""The drift run (``vqual drift``): verify the baseline, run the drift playbook with the spec
derived from it, summarise the bundle it wrote.

What a baseline is and how a live state is compared with it is
:mod:`qualification.baseline.drift`; the ``qualify`` action compares on each target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification import yamlio
from qualification.baseline.drift import (
    FINGERPRINT_CHECKS,
    Baseline,
    drift_spec,
    load_baseline,
)
from qualification.checks.fingerprint_model import AllowedDifferences
from qualification.evidence.reader import read_bundle
from qualification.execution.derived import DerivedRunRequest, run_derived
from qualification.execution.qualify import QualifySummary

SCHEMA = "vqual.drift/v1"
PLAYBOOK = "drift.yml"


@dataclass
class DriftRequest(DerivedRunRequest):
    """A drift run: ``allowed`` differences beyond the baseline spec's (``--allowed``)."""

    allowed: Mapping[str, Any] | None = None


@dataclass
class DriftSummary:
    baseline: Path
    baseline_seal: str
    change_id: str
    run_id: str
    bundle: Path
    verdict: str
    verification: str
    differences: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "baseline": {"bundle": str(self.baseline), "seal": self.baseline_seal},
            "change_id": self.change_id,
            "run_id": self.run_id,
            "bundle": str(self.bundle),
            "verdict": self.verdict,
            "verification": self.verification,
            "drift": bool(self.differences),
            "differences": list(self.differences),
            "errors": list(self.errors),
            "exit_code": self.exit_code,
        }

    def to_text(self) -> str:
        """The summary; its first line shows the drift bundle's verdict (the exit code's
        meaning): "no drift" only when everything was observed and matched."""
        if self.differences:
            found = f"{len(self.differences)} difference(s) from"
        elif self.verdict == "pass":
            found = "no drift from"
        else:
            found = f"no difference found, {len(self.errors)} not observed, from"
        head = (
            f"vqual drift: {self.change_id} run {self.run_id}: {self.verdict.upper()}: "
            f"{found} {self.baseline} (seal {self.baseline_seal[:16]})"
        )
        lines = [head]
        for d in self.differences:
            lines.append(f"  {d['reason']}")
        lines += [f"  error: {e}" for e in self.errors]
        lines.append(f"  evidence: {self.bundle} ({self.verification})")
        return "\n".join(lines)


def run_drift(request: DriftRequest) -> DriftSummary:
    """Verify the baseline, run the drift playbook, summarise the bundle it wrote.

    Exit codes: the drift bundle's verdict (docs/formats.md): 0 no drift, 1 drift (or the
    baseline does not verify), 2 bad input, 3 a baseline test could not be performed
    (not-executed), 4 a target could not be observed.
    """
    baseline = load_baseline(request.baseline, request.state_dir)
    summary = _run_playbook(request, baseline)
    differences, errors = _differences_and_errors(summary.bundle)
    return DriftSummary(
        baseline=baseline.path,
        baseline_seal=baseline.seal,
        change_id=summary.change_id,
        run_id=summary.run_id,
        bundle=summary.bundle,
        verdict=summary.verdict,
        verification=summary.verification,
        differences=differences,
        errors=errors,
        exit_code=summary.exit_code,
    )


def _run_playbook(request: DriftRequest, baseline: Baseline) -> QualifySummary:
    """Run the drift playbook with the spec derived from ``baseline`` and its data files."""
    spec = yamlio.safe_load(baseline.spec_text.decode("utf-8"))
    extravars: dict[str, Any] = {"vqual_drift_baseline": str(baseline.path.resolve())}
    if request.allowed:
        AllowedDifferences.from_json(request.allowed, where="--allowed")
        extravars["vqual_drift_allowed"] = dict(request.allowed)
    return run_derived(request, baseline, name="drift", spec=drift_spec(baseline),
                       data_files=spec.get("data_files") or {}, playbook=PLAYBOOK,
                       extravars=extravars)


def _differences_and_errors(bundle: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The differences a drift bundle records (its failed results) and what it could not
    observe (its error and not-executed results)."""
    differences: list[dict[str, Any]] = []
    errors: list[str] = []
    for rec in read_bundle(bundle).check_results:
        data = rec.data
        test_id = str(data.get("test_id"))
        if data.get("verdict") == "fail" and (
            ":" in test_id or data.get("check") not in FINGERPRINT_CHECKS
        ):
            what, where = ("check", test_id)
            if data.get("check") in FINGERPRINT_CHECKS:
                what, where = test_id.split(":", 2)[1:]
            differences.append(
                {
                    "target": data.get("target"),
                    "what": what,
                    "where": where,
                    "test_id": test_id,
                    "baseline": (data.get("expected") or {}).get("value"),
                    "live": data.get("observed"),
                    "reason": data.get("reason"),
                }
            )
        elif data.get("verdict") in ("error", "not-executed"):
            errors.append(f"{data.get('target')}: {test_id}: {data.get('reason')}")
    return differences, errors
