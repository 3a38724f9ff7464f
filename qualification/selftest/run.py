"""The selftest run: every self check, in order, written as a signed, sealed bundle."""

from __future__ import annotations

import hashlib
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification import __version__
from qualification.config import config_citation
from qualification.errors import exit_code_for_verdict
from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import CHECK_RESULT, RUN_START
from qualification.evidence.kinds.run_start import RunStartData
from qualification.evidence.records import utc_now
from qualification.evidence.verify import verify_bundle
from qualification.execution.recorder import overall_verdict, records_as_dicts
from qualification.execution.run_start import run_start_data
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.review.documents import check_signer
from qualification.review.signed import load_trust
from qualification.selftest.agreement import agreement_checks
from qualification.selftest.base import REQUIREMENTS, Outcome, SelfCheck, repo_golden_dir
from qualification.selftest.compartments import compartment_checks
from qualification.selftest.conversion import conversion_checks
from qualification.selftest.deviations import deviation_checks
from qualification.selftest.evidence import Scratch, golden_checks, scratch_checks
from qualification.selftest.failover import failover_checks
from qualification.selftest.inspector import inspector_checks
from qualification.selftest.install import installation_checks
from qualification.selftest.kinds import kind_checks
from qualification.selftest.library import library_checks
from qualification.selftest.migration import migration_checks
from qualification.selftest.paths import path_checks
from qualification.selftest.platforms import platform_checks
from qualification.selftest.resume import resume_checks
from qualification.selftest.review_summary import review_checks
from qualification.selftest.risk import risk_checks
from qualification.selftest.slices import slice_checks
from qualification.selftest.testinfra import testinfra_checks
from qualification.selftest.timestamp import timestamp_checks
from qualification.selftest.translog import translog_checks
from qualification.selftest.trust_root import trust_root_checks
from qualification.selftest.trusted_time import trusted_time_checks
from qualification.selftest.unplanned import unplanned_checks
from qualification.selftest.web import web_checks
from qualification.signing import Signer
from qualification.spec.change import validate_change_id
from qualification.state import trust_digest
from qualification.timeutil import new_run_id
from qualification.timeutil import utc_now as utc_now_dt


def self_checks(golden: Path | None, scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """Every check the selftest runs, in order.

    One group per line, each from its own module beside this one; a new group (for example
    the platform registry's, VQ-24, in platforms.py) is a module returning its :class:`SelfCheck` list, added
    at the end so the ids and order of the others stay as they are.
    """
    root = lambda: scratch().root
    return [
        *installation_checks(),  # ST-IQ-01..05 (VQ-01, VQ-28)
        *golden_checks(golden),  # ST-OQ-01 (VQ-02)
        *scratch_checks(scratch),  # ST-OQ-02..06 (VQ-03..06)
        *library_checks(root),  # ST-OQ-07..09 (VQ-07, VQ-19, VQ-20)
        *kind_checks(golden, scratch),  # ST-OQ-10, 11 (VQ-25)
        *resume_checks(root),  # ST-OQ-12 (VQ-26)
        *timestamp_checks(),  # ST-OQ-13 (VQ-29)
        *platform_checks(),  # ST-IQ-06, ST-OQ-14 (VQ-24)
        *trusted_time_checks(golden, scratch),  # ST-OQ-18, 19 (VQ-41, VQ-44)
        *agreement_checks(scratch),  # ST-OQ-15 (VQ-31)
        *trust_root_checks(scratch),  # ST-OQ-16, 17 (VQ-35, VQ-36)
        *inspector_checks(scratch),  # ST-OQ-21 (VQ-46)
        *testinfra_checks(),  # ST-OQ-20 (VQ-47)
        *risk_checks(),  # ST-OQ-23 (VQ-56)
        *slice_checks(scratch),  # ST-OQ-24 (VQ-49)
        *compartment_checks(),  # ST-OQ-32 (VQ-75)
        *translog_checks(scratch),  # ST-OQ-25 (VQ-61)
        *conversion_checks(),  # ST-OQ-30, 31 (VQ-71, VQ-73)
        *web_checks(scratch),  # ST-OQ-27 (VQ-65, VQ-66)
        *review_checks(),  # ST-OQ-29 (VQ-68)
        *path_checks(),  # ST-OQ-35 (VQ-76)
        *deviation_checks(scratch),  # ST-OQ-33 (VQ-82)
        *unplanned_checks(scratch),  # ST-OQ-37 (VQ-93)
        *failover_checks(),  # ST-OQ-36 (VQ-88)
        *migration_checks(scratch),  # ST-OQ-34 (VQ-85)
    ]


@dataclass
class SelftestSummary:
    bundle: Path
    verdict: str
    counts: dict[str, int]
    seal: str
    verification: str
    failed: list[str]

    @property
    def exit_code(self) -> int:
        """The verdict's exit code, as for every run (docs/formats.md); 1 if the bundle it
        just sealed does not verify."""
        return exit_code_for_verdict(self.verdict) if self.verification == "valid" else 1


def run_selftest(
    state_dir: Path,
    evidence_dir: Path,
    change_id: str,
    signer: Signer,
    initiator: str,
    *,
    golden: Path | None = None,
    run_id: str | None = None,
    extra_checks: Callable[[Callable[[], Scratch]], list[SelfCheck]] | None = None,
) -> SelftestSummary:
    """Run every self check and write the outcome as a signed, sealed bundle.

    Raises:
        ChangeIdError: bad change id.
        TrustError: the key cannot sign runs (not a trusted, valid executor).
    """
    change = validate_change_id(change_id)
    trust = load_trust(state_dir)
    check_signer(trust, signer.keyid, "executor")
    golden = golden if golden is not None else repo_golden_dir()
    target = f"vqual@{platform.node() or 'controller'}"
    with tempfile.TemporaryDirectory(prefix="vqual-selftest-") as tmp:
        made: list[Scratch] = []

        def scratch() -> Scratch:
            if not made:
                made.append(Scratch(Path(tmp)))
            return made[0]

        checks = self_checks(golden, scratch)
        # Checks of packages above the selftest's layer (the evidence server's, ST-OQ-26),
        # handed in by the command that runs it; they come last so the others keep their order.
        checks += extra_checks(scratch) if extra_checks is not None else []
        run = run_id or new_run_id(utc_now_dt())
        prev = latest_seal(evidence_dir, change)
        writer = BundleWriter.create(evidence_dir, change, run, signer, initiator)
        writer.tsa = trust.tsa
        writer.append(RUN_START, _run_start(checks, target, state_dir, golden, prev))
        counts: dict[str, int] = {}
        failed: list[str] = []
        for check in checks:
            data = _run_check(check, target)
            verdict = str(data["verdict"])
            if verdict != "pass":
                failed.append(f"{check.test_id}: {data['reason'] or verdict}")
            counts[verdict] = counts.get(verdict, 0) + 1
            writer.append(CHECK_RESULT, data)
        writer.sync()
        records = records_as_dicts(writer.path)
        writer.add_file("junit.xml", render_junit(records).encode("utf-8"))
        writer.add_file(
            "report.html",
            render_report(
                records, spec_requirements=REQUIREMENTS, title=f"vqual selftest {change} / {run}"
            ).encode("utf-8"),
        )
        verdict = overall_verdict(counts)
        seal = writer.seal(counts, len(checks), len(checks), verdict)
    result = verify_bundle(writer.path, trust)
    return SelftestSummary(writer.path, verdict, counts, seal, result.status, failed)


def _run_start(
    checks: list[SelfCheck], target: str, state_dir: Path, golden: Path | None, prev: str | None
) -> RunStartData:
    """The selftest's ``run.start``, by the one builder of every run's: its built-in spec is
    the checks' definition."""
    definition = [
        {
            "test_id": c.test_id,
            "title": c.title,
            "requirement": c.requirement,
            "expected": c.expected,
        }
        for c in checks
    ]
    start = run_start_data(
        mode="selftest",
        spec={
            "path": "builtin:selftest",
            "name": "vqual-selftest",
            "version": __version__,
            "digest": hashlib.sha256(canonical_bytes(definition)).hexdigest(),
        },
        data_files=[],
        inventory_digest=None,
        trust={"digest": trust_digest(state_dir)},
        targets=[
            {
                "name": target,
                "kinds": ["vqual"],
                "risk": "high",
                "risk_reason": "vqual decides GxP evidence",
            }
        ],
        planned=[{"test_id": c.test_id, "target": target, "protocol": c.protocol} for c in checks],
        prev_run_seal=prev,
        approval=None,
        config=config_citation(state_dir),
        requirements=sorted(REQUIREMENTS),
    )
    start["golden"] = str(golden) if golden else None
    return start


def _run_check(check: SelfCheck, target: str) -> dict[str, Any]:
    """Run one self check; its ``check.result`` data (a check that raises is an error)."""
    started = utc_now()
    t0 = time.perf_counter()
    try:
        if check.not_executed:
            outcome, verdict = Outcome(False, None, check.not_executed), "not-executed"
        else:
            outcome = check.run()
            verdict = "pass" if outcome.ok else "fail"
    except Exception as exc:  # noqa: BLE001 - a broken self check is recorded as error
        outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}")
        verdict = "error"
    return {
        "test_id": check.test_id,
        "title": check.title,
        "protocol": check.protocol,
        "requirements": [check.requirement],
        "target": target,
        "check": "selftest",
        "method": check.method,
        "expected": check.expected,
        "observed": outcome.observed,
        "verdict": verdict,
        "reason": outcome.reason,
        "raw": None,
        "started": started,
        "finished": utc_now(),
        "duration_ms": round((time.perf_counter() - t0) * 1000, 3),
    }
