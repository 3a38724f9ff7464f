"""Verifying a whole change: every run, and the chain of ``prev_run_seal`` between them.

Each run's ``run.start`` cites the seal of the latest run of the change sealed before it
(``qualification.evidence.bundle.latest_seal``). So a run that is deleted, replaced, rewritten
(even with the executor's own key) or cut before its ``run.end`` breaks the citation of the
run after it, and the run itself is then cited by nothing. Only the latest run is cited by
nothing in an honest change: without a transparency log nothing vouches for it, which the
result says as "latest run not anchored" (a warning; it alone does not change the status).

A migration summary (mode ``migration``, docs/conversion.md) cites the baseline, conversion
and decommissioning runs of each VM: each must be a run here with that seal, name and verdict,
and each conversion must cite that baseline.

Slices (docs/aap.md, "Job slicing"): the runs of one sliced job share a ``slice`` parent and
ran side by side, so a slice is not expected to cite its siblings; a join run (mode ``join``)
cites the seals of all of them, and a seal a join cites counts as cited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, BadInputError
from qualification.evidence.bundle import RECORDS, record_payload
from qualification.evidence.kinds import RUN_START
from qualification.evidence.result import INCOMPLETE, INVALID, VALID, VerificationResult
from qualification.evidence.verify import verify_bundle
from qualification.signing.trust import TrustStore

__all__ = ["ChangeResult", "is_change_dir", "run_start_of", "verify_change"]

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
    starts = {id(r): _start_of(r) for r in runs}
    parents = {id(r): _parent(starts[id(r)].get("slice")) for r in runs}
    _judge_chain(out, parents, _joined(starts))
    _judge_slices(out, starts, parents)
    _judge_migrations(out, starts)
    if out.problems:
        out.status = INVALID
    elif any(r.status == INCOMPLETE for r in runs):
        out.status = INCOMPLETE
    else:
        out.status = VALID
    return out


def _judge_chain(
    out: ChangeResult, parents: dict[int, str | None], joined: set[str]
) -> None:
    """Problems and warnings of the ``prev_run_seal`` chain (module docstring).

    Each run should cite the run sealed latest before it started (what the writer's
    ``latest_seal`` takes); a run that overlapped others (a rolling patch around its
    re-qualification runs) may cite an older one of the change, which is a warning. A slice
    is judged without its siblings (``parents``: each run's slice parent), which may have run
    anywhere; the seals in ``joined`` are cited by a join run."""
    runs = out.runs
    sealed = [r for r in runs if r.seal_digest]
    seal_of = {r.seal_digest: r for r in sealed}
    cited: set[str] = {s for s in joined if s in seal_of}
    for r in runs:
        name, prev = r.path.name, r.prev_run_seal
        sib = parents[id(r)]
        before = [e for e in sealed if e is not r and (e.ended or "") < (r.started or "")
                  and (sib is None or parents[id(e)] != sib)]
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
            sibling = sib is not None and parents[id(found)] == sib
            if expected is not None and found is not expected and not sibling:
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


# ---------------------------------------------------------------- slices and joins


def _start_of(r: VerificationResult) -> dict[str, Any]:
    """The ``run.start`` payload of a run that is not invalid (its signature checked by
    ``verify_bundle``), else empty."""
    if r.status == INVALID:
        return {}
    try:
        with open(r.path / RECORDS, "rb") as fh:
            rec = record_payload(fh.readline().rstrip(b"\n"))
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    data = rec.get("data")
    return data if rec.get("kind") == RUN_START and isinstance(data, dict) else {}


#: The public name: the migration summary reads the runs of a change by their run.start.
run_start_of = _start_of


def _parent(block: Any) -> str | None:
    parent = block.get("parent") if isinstance(block, dict) else None
    return parent if isinstance(parent, str) else None


def _joins(start: dict[str, Any]) -> list[dict[str, Any]]:
    joins = start.get("joins")
    return [j for j in joins if isinstance(j, dict)] if isinstance(joins, list) else []


def _joined(starts: dict[int, dict[str, Any]]) -> set[str]:
    return {str(j.get("seal")) for start in starts.values() for j in _joins(start)}


def _judge_slices(
    out: ChangeResult, starts: dict[int, dict[str, Any]], parents: dict[int, str | None]
) -> None:
    """Siblings of one parent agree on the count and have distinct indexes; a join cites
    only seals of runs here, of its parent, and every sibling sealed before it started."""
    family: dict[str, list[VerificationResult]] = {}
    for r in out.runs:
        if (parent := parents[id(r)]) is not None:
            family.setdefault(parent, []).append(r)
    for parent, sibs in sorted(family.items()):
        counts = sorted({str(starts[id(r)]["slice"].get("count")) for r in sibs
                         if starts[id(r)]["slice"].get("count") is not None})
        if len(counts) > 1:
            names = ", ".join(r.path.name for r in sibs)
            out.problems.append(
                f"slice parent {parent}: runs {names} give different slice counts "
                f"({', '.join(counts)})"
            )
        seen: dict[int, str] = {}
        for r in sibs:
            index = starts[id(r)]["slice"].get("index")
            if isinstance(index, int) and index in seen:
                out.problems.append(
                    f"run {r.path.name}: slice {index} of parent {parent} is also run {seen[index]}"
                )
            elif isinstance(index, int):
                seen[index] = r.path.name
    seal_of = {r.seal_digest: r for r in out.runs if r.seal_digest}
    for r in out.runs:
        if joins := _joins(starts[id(r)]):
            _judge_join(out, r, joins, seal_of, family, parents)


def _judge_join(
    out: ChangeResult,
    join: VerificationResult,
    joins: list[dict[str, Any]],
    seal_of: dict[str, VerificationResult],
    family: dict[str, list[VerificationResult]],
    parents: dict[int, str | None],
) -> None:
    name = join.path.name
    wanted = {_parent(j.get("slice")) for j in joins}
    for j in joins:
        seal = str(j.get("seal"))
        found = seal_of.get(seal)
        if found is None:
            out.problems.append(
                f"run {name}: the join cites seal {seal[:16]} (run {j.get('run')}), the seal of "
                "no run here (deleted, replaced or rewritten)"
            )
        elif parents[id(found)] not in wanted or found.path.name != j.get("run"):
            out.problems.append(
                f"run {name}: the join cites run {found.path.name} as run {j.get('run')} of "
                f"slice parent {_parent(j.get('slice'))}; it is of "
                f"{parents[id(found)] or 'no slice parent'}"
            )
        elif j.get("verdict") != found.verdict:
            out.problems.append(
                f"run {name}: the join records verdict {j.get('verdict')} for run "
                f"{found.path.name}, whose run.end says {found.verdict}"
            )
    cited = {str(j.get("seal")) for j in joins}
    for parent in sorted(p for p in wanted if p is not None):
        for sib in family.get(parent, []):
            if (sib.seal_digest and sib.seal_digest not in cited
                    and (sib.ended or "") < (join.started or "")):
                out.problems.append(
                    f"run {name}: the join of slice parent {parent} omits run {sib.path.name}, "
                    "sealed before the join started"
                )


# ---------------------------------------------------------------- migration summaries


def _judge_migrations(out: ChangeResult, starts: dict[int, dict[str, Any]]) -> None:
    """Each seal a migration summary cites is a run here of that name and verdict, and each
    cited conversion cites the cited baseline."""
    seal_of = {r.seal_digest: r for r in out.runs if r.seal_digest}
    for r in out.runs:
        block = starts[id(r)].get("migration")
        vms = block.get("vms") if isinstance(block, dict) else None
        for vm in vms if isinstance(vms, list) else []:
            if not isinstance(vm, dict):
                continue
            for step in ("baseline", "conversion", "decommission"):
                cited = vm.get(step)
                if not isinstance(cited, dict):
                    continue
                found = seal_of.get(str(cited.get("seal")))
                what = f"run {r.path.name}: the migration cites {step} of {vm.get('source')}"
                if found is None or found.path.name != cited.get("run"):
                    out.problems.append(
                        f"{what} as run {cited.get('run')} (seal {str(cited.get('seal'))[:16]}), "
                        "the seal of no such run here (deleted, replaced or rewritten)")
                elif "verdict" in cited and cited["verdict"] != found.verdict:
                    out.problems.append(
                        f"{what} with verdict {cited['verdict']}; run {found.path.name}'s "
                        f"run.end says {found.verdict}")
                elif step == "conversion":
                    conv = starts[id(found)].get("conversion") or {}
                    if conv.get("baseline_seal") != (vm.get("baseline") or {}).get("seal"):
                        out.problems.append(
                            f"{what}: run {found.path.name} compares with another baseline")
