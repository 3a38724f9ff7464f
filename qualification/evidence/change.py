"""Verifying a whole change: every run, and the chain of ``prev_run_seal`` between them.

Each run's ``run.start`` cites the seal of the latest run of the change sealed before it
(``qualification.evidence.bundle.latest_seal``). So a run that is deleted, replaced, rewritten
(even with the executor's own key) or cut before its ``run.end`` breaks the citation of the
run after it, and the run itself is then cited by nothing. Only the latest run is cited by
nothing in an honest change: without a transparency log nothing vouches for it, which the
result says as "latest run not anchored" (a warning; it alone does not change the status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qualification.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, BadInputError
from qualification.evidence.bundle import RECORDS
from qualification.evidence.result import INCOMPLETE, INVALID, VALID, VerificationResult
from qualification.evidence.verify import verify_bundle
from qualification.signing.trust import TrustStore

__all__ = ["ChangeResult", "is_change_dir", "verify_change"]

NOT_ANCHORED = "latest run not anchored"


@dataclass
class ChangeResult:
    """The outcome of :func:`verify_change`; ``runs`` in the order they started."""

    path: Path
    status: str
    runs: list[VerificationResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {VALID: EXIT_OK, INCOMPLETE: EXIT_INCOMPLETE}.get(self.status, EXIT_FAILED)


def _run_dirs(path: Path) -> list[Path]:
    return sorted(
        p for p in path.iterdir() if p.is_dir() and not p.is_symlink() and (p / RECORDS).exists()
    )


def is_change_dir(path: Path) -> bool:
    """A directory of runs (``evidence/<change_id>``) rather than one run."""
    return path.is_dir() and not (path / RECORDS).exists() and bool(_run_dirs(path))


def verify_change(path: Path, trust: TrustStore, *, workers: int | None = None) -> ChangeResult:
    """Verify every run under ``path`` and the ``prev_run_seal`` chain between them.

    Raises:
        BadInputError: ``path`` holds no run.
    """
    path = Path(path)
    if not path.is_dir() or not _run_dirs(path):
        raise BadInputError(f"{path} holds no evidence bundle (no <run>/{RECORDS})")
    runs = [verify_bundle(d, trust, workers=workers) for d in _run_dirs(path)]
    runs.sort(key=lambda r: (r.started or "", r.path.name))
    out = ChangeResult(path=path, status=INVALID, runs=runs)
    for r in runs:
        if r.status == INVALID:
            first = r.problems[0] if r.problems else "invalid"
            out.problems.append(f"run {r.path.name}: invalid: {first}")
    _judge_chain(out)
    if out.problems:
        out.status = INVALID
    elif any(r.status == INCOMPLETE for r in runs):
        out.status = INCOMPLETE
    else:
        out.status = VALID
    return out


def _judge_chain(out: ChangeResult) -> None:
    """Problems and warnings of the ``prev_run_seal`` chain (module docstring).

    Each run should cite the run sealed latest before it started (what the writer's
    ``latest_seal`` takes); a run that overlapped others (a rolling patch around its
    re-qualification runs) may cite an older one of the change, which is a warning."""
    runs = out.runs
    sealed = [r for r in runs if r.seal_digest]
    seal_of = {r.seal_digest: r for r in sealed}
    cited: set[str] = set()
    for r in runs:
        name, prev = r.path.name, r.prev_run_seal
        before = [e for e in sealed if e is not r and (e.ended or "") < (r.started or "")]
        expected = max(before, key=lambda e: (e.ended or "", e.path.name)) if before else None
        if prev is None:
            if expected is not None:
                out.problems.append(
                    f"run {name}: cites no earlier run, but run {expected.path.name} was "
                    "sealed before it started"
                )
            continue
        cited.add(prev)
        found = seal_of.get(prev)
        if found is not None and found is not r:
            if expected is not None and found is not expected:
                out.warnings.append(
                    f"run {name}: cites run {found.path.name}, not {expected.path.name}, the "
                    "latest sealed before it started (runs that overlapped)"
                )
            continue
        why = []
        if expected is not None:
            why.append(
                f"run {expected.path.name} (the latest sealed before it started) was replaced "
                "or rewritten, or a run after it was deleted"
            )
        cut = [e.path.name for e in runs if e.status == INCOMPLETE and e is not r
               and (e.started or "") < (r.started or "")]
        if cut:
            why.append(f"run {', '.join(cut)} has no run.end: a sealed run cut before its run.end")
        out.problems.append(
            f"run {name}: cites prev_run_seal {prev[:16]}, the seal of no run here; "
            + ("; ".join(why) or "the run it cites was deleted")
        )
    for r in sealed:
        if r.seal_digest not in cited:
            out.warnings.append(
                f"{NOT_ANCHORED}: {r.path.name} (seal {str(r.seal_digest)[:16]}) is cited by no "
                "later run and no transparency log; removing or rewriting it is not detectable "
                "here"
            )
