"""``vqual verify`` and ``vqual report``: read a bundle, check it, say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qualification.audit import record_failed_verification
from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.evidence import trusted_time
from qualification.evidence.change import is_change_dir, verify_change
from qualification.evidence.verify import verify_bundle
from qualification.execution.recorder import records_as_dicts
from qualification.reports.html import render_pdf, render_report
from qualification.review.pinned import TrustChoice, judged_trust
from qualification.signing import TrustStore


def verifying_trust(
    state_dir: Path, *, trust_root: Path | None = None, legacy: bool = False
) -> TrustChoice:
    """The trust store verification judges with: :func:`judged_trust`, the one judgement
    every reader of evidence makes."""
    return judged_trust(state_dir, trust_root=trust_root, legacy=legacy)


def verify_command(
    bundle: Path, state_dir: Path, *, record: bool = False, trust_root: Path | None = None,
    legacy: bool = False,
) -> tuple[str, dict[str, Any], int]:
    """Verify a bundle; returns (text for people, JSON payload, exit code)."""
    if not bundle.is_dir():
        raise BadInputError(f"{bundle} is not an evidence bundle directory")
    try:
        choice = verifying_trust(state_dir, trust_root=trust_root, legacy=legacy)
    except EvidenceInvalidError as exc:
        if record:
            record_failed_verification(state_dir, bundle, "invalid", [exc.message])
        raise
    trust, trust_version = choice.store, choice.version
    if is_change_dir(bundle):
        text, change_payload, code = _verify_change_command(
            bundle, trust, trust_version, state_dir, record=record
        )
        change_payload["trust_root"] = choice.describe()
        return f"{text}\n  {choice.describe()}", change_payload, code
    # A waived result without an approver's valid waiver before it makes the bundle invalid;
    # verify_bundle names each such problem in ``problems`` and again in ``waiver_problems``.
    result = verify_bundle(bundle, trust)
    counts = dict(result.counts or {})
    payload: dict[str, Any] = {
        "schema": "vqual.verify/v1",
        "bundle": str(bundle),
        "status": result.status,
        "exit_code": result.exit_code,
        "problems": list(result.problems),
        "seal": result.seal_digest,
        "verdict": result.verdict,
        "counts": counts,
        "planned": result.planned,
        "missing_tests": list(result.missing_tests),
        "trust_digest": result.trust_digest,
        "trust_version": trust_version,
        "waiver_problems": list(result.waiver_problems),
        "signatures": [
            {k: s.get(k) for k in ("meaning", "name", "keyid", "time")}
            for s in result.signatures
        ],
        "format": result.format_version,
        "format_text": result.format_text,
        "trusted_time": {"summary": trusted_time.summary(result), "tokens": result.trusted_time,
                         "none_because": result.no_trusted_time},
    }
    lines = [f"{bundle}: {result.status.upper()}"]
    if result.problems:
        lines += [f"  {p}" for p in result.problems[:20]]
        if len(result.problems) > 20:
            lines.append(f"  ... and {len(result.problems) - 20} more")
    if result.missing_tests:
        lines.append("  planned tests not executed:")
        lines += [f"    {m}" for m in result.missing_tests[:50]]
    if counts:
        lines.append(
            "  verdict: "
            + str(result.verdict)
            + "  ("
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            + ")"
        )
    lines.append(f"  seal: {result.seal_digest or '-'}")
    lines.append(f"  {result.format_text}")
    lines.append(f"  trusted time: {trusted_time.summary(result)}")
    version_text = f"signed version {trust_version}" if trust_version else "not signed"
    lines.append(f"  trust store: {result.trust_digest} ({version_text})")
    for sig in result.signatures:
        lines.append(f"  signed {sig.get('meaning')} by {sig.get('name')} at {sig.get('time')}")
    lines += [f"  warning: {w}" for w in result.warnings]
    lines.append(f"  {choice.describe()}")
    payload["warnings"] = list(result.warnings)
    payload["trust_root"] = choice.describe()
    if record and result.status != "valid":
        record_failed_verification(state_dir, bundle, result.status, list(result.problems))
    return "\n".join(lines), payload, int(result.exit_code)


def _verify_change_command(
    change: Path, trust: TrustStore, trust_version: int | None, state_dir: Path, *, record: bool
) -> tuple[str, dict[str, Any], int]:
    """``vqual verify evidence/<change>``: every run, the chain between them, what is missing."""
    result = verify_change(change, trust)
    lines = [f"{change}: {result.status.upper()} (change of {len(result.runs)} runs)"]
    lines += [f"  {p}" for p in result.problems[:40]]
    for run in result.runs:
        sigs = "; ".join(f"signed {s.get('meaning')} by {s.get('name')}" for s in run.signatures)
        lines.append(
            f"  run {run.path.name}: {run.status.upper()}  verdict {run.verdict or '-'}  "
            f"seal {(run.seal_digest or '-')[:16]}  cites {(run.prev_run_seal or '-')[:16]}"
            + (f"  ({sigs})" if sigs else "")
        )
    lines += [f"  warning: {w}" for w in result.warnings]
    version_text = f"signed version {trust_version}" if trust_version else "not signed"
    lines.append(f"  trust store: {trust.digest} ({version_text})")
    payload: dict[str, Any] = {
        "schema": "vqual.verify-change/v1",
        "change": str(change),
        "status": result.status,
        "exit_code": result.exit_code,
        "problems": list(result.problems),
        "warnings": list(result.warnings),
        "runs": [
            {
                "run": r.path.name,
                "status": r.status,
                "verdict": r.verdict,
                "seal": r.seal_digest,
                "prev_run_seal": r.prev_run_seal,
                "problems": list(r.problems),
                "signatures": [
                    {k: s.get(k) for k in ("meaning", "name", "keyid", "time")}
                    for s in r.signatures
                ],
            }
            for r in result.runs
        ],
        "trust_digest": trust.digest,
        "trust_version": trust_version,
    }
    if record and result.status != "valid":
        record_failed_verification(state_dir, change, result.status, list(result.problems))
    return "\n".join(lines), payload, int(result.exit_code)


def render_current_report(
    bundle: Path, state_dir: Path, *, out: Path | None = None, pdf: bool = False,
    trust_root: Path | None = None, legacy: bool = False,
) -> tuple[list[Path], str]:
    """Render the report as it stands now (signatures added since the seal included),
    judged through the pinned root as ``verify`` judges; returns the files written and the
    line naming the root (or legacy).

    Raises:
        EvidenceInvalidError: the bundle does not verify, or the pinned root does not vouch
            for the trust store (nothing is written).
    """
    if not bundle.is_dir():
        raise BadInputError(f"{bundle} is not an evidence bundle directory")
    choice = judged_trust(state_dir, trust_root=trust_root, legacy=legacy)
    result = verify_bundle(bundle, choice.store)
    if result.status == "invalid":
        raise EvidenceInvalidError(
            f"{bundle} does not verify: {result.problems[0] if result.problems else 'invalid'}"
        )
    records = records_as_dicts(bundle)
    html = render_report(
        records,
        verification={
            "status": result.status,
            "seal": result.seal_digest,
            "trust_digest": result.trust_digest,
            "problems": list(result.problems),
        },
    )
    target = out or bundle / "views"
    target.mkdir(parents=True, exist_ok=True)
    written = [target / "report.html"]
    written[0].write_text(html, encoding="utf-8")
    if pdf:
        pdf_path = target / "report.pdf"
        pdf_path.write_bytes(render_pdf(html))
        written.append(pdf_path)
    return written, choice.describe()
