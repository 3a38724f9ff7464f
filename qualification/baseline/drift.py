"""Drift: compare the live state of hosts, hypervisors and VMs with a signed baseline bundle.

The baseline is a sealed bundle that verifies (a Master-VM's or a host's qualification). A
drift run is an ordinary run of the collection (playbook ``drift.yml``, mode ``drift``)
whose spec is derived from the baseline's own ``spec.yaml``:

- every fingerprint test of the baseline (``host_fingerprint``, ``vm_fingerprint``), made
  to apply to the kinds of the baseline's fingerprinted subjects (a Master-VM's clones too),
  so each such target's live fingerprint is collected;
- every other baseline test that ran on a target without a fingerprint, unchanged, so its
  result can be re-evaluated.

On each target the ``qualify`` action hands the results to :func:`drift_results`: a
fingerprint test's result becomes the comparison with the baseline fingerprint (``pass``: no
difference) and **each difference is one more ``check.result`` with verdict ``fail``**
(test id ``<test>:<what>:<where>``, expected the baseline value, observed the live one), so
JUnit, the report and ``vqual verify`` show them with no new record kind. A re-evaluated
test fails when its verdict or observed value differs from the baseline's.

The drift run itself (``vqual drift``) is the run service's: :mod:`qualification.execution.drift`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification import yamlio
from qualification.checks.fingerprint_model import (
    AllowedDifferences,
    Difference,
    Fingerprint,
    compare,
    fingerprints_from_records,
)
from qualification.errors import (
    EvidenceIncompleteError,
    EvidenceInvalidError,
    VqualError,
)
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.review.pinned import judged_trust
from qualification.spec.model import target_kinds
from qualification.state import resolve_state_dir

FINGERPRINT_CHECKS = ("host_fingerprint", "vm_fingerprint")


@dataclass(frozen=True)
class Baseline:
    """What a drift run needs from a baseline bundle that verified."""

    path: Path
    seal: str
    change_id: str
    run_id: str
    spec_text: bytes
    data_files: Mapping[str, bytes]
    fingerprints: Mapping[str, Fingerprint]
    #: (test id, target) -> the baseline's check.result data
    results: Mapping[tuple[str, str], Mapping[str, Any]]
    #: target kinds of the baseline's fingerprinted subjects (from run.start)
    kinds: frozenset[str] = frozenset()

    def fingerprint_for(self, target: str) -> Fingerprint | None:
        """The baseline fingerprint a live target is compared with: its own, or the only one
        (a Master-VM's, for its clones); None when the baseline has neither."""
        if target in self.fingerprints:
            return self.fingerprints[target]
        if len(self.fingerprints) == 1:
            return next(iter(self.fingerprints.values()))
        return None

    def write_data_files(self, wanted: Mapping[str, Any], into: Path) -> None:
        """Write the baseline's sealed copies of the spec's data files (``data_files``: name
        -> relative path) under ``into``, where a spec derived from it finds them."""
        for name, rel in wanted.items():
            content = self.data_files.get(str(name))
            if content is not None:
                target = into / str(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)


def load_baseline(path: Path, state_dir: Path | None = None) -> Baseline:
    """Verify the baseline bundle and read what drift needs from it.

    Raises:
        EvidenceInvalidError: the bundle does not verify, did not finish, holds a bad
            fingerprint record, or the pinned root does not vouch for the trust store (exit 1,
            with the reason).
        BadInputError: no trust store, or no trust root pinned (and no legacy trust).
    """
    path = Path(path)
    if not (path / "records.jsonl").is_file():
        raise EvidenceInvalidError("not an evidence bundle (no records.jsonl)", where=str(path))
    try:
        # judged as `vqual verify` judges: through the pinned root ($VQUAL_TRUST_ROOT, the
        # system pin; legacy only with VQUAL_LEGACY_TRUST=1), as the drift run itself is
        trust = judged_trust(resolve_state_dir(state_dir)).store
        result = verify_bundle(path, trust)
        result.raise_for_status()
    except EvidenceIncompleteError as exc:
        # A run that never sealed is no baseline: refused like an invalid one.
        raise EvidenceInvalidError(f"baseline refused: {exc.message}", where=str(path)) from None
    except EvidenceInvalidError as exc:
        raise EvidenceInvalidError(f"baseline refused: {exc.message}", where=str(path)) from None
    bundle = read_bundle(path)
    fingerprints = fingerprints_from_records(
        [(r.line, r.data) for r in bundle.of_kind("fingerprint")],
        where=f"{path}/records.jsonl",
    )
    results = {
        (str(r.data.get("test_id")), str(r.data.get("target"))): r.data
        for r in bundle.check_results
    }
    data_files = {
        name[len("data/") :]: bundle.read_file(name)
        for name in bundle.files
        if name.startswith("data/")
    }
    start = bundle.run_start
    kinds = {
        str(kind)
        for target in ((start.data.get("targets") if start else None) or [])
        if isinstance(target, Mapping) and target.get("name") in fingerprints
        for kind in target.get("kinds") or []
    }
    return Baseline(
        kinds=frozenset(kinds),
        path=path,
        seal=str(result.seal_digest),
        change_id=str(result.change_id),
        run_id=str(result.run_id),
        spec_text=bundle.read_file("spec.yaml"),
        data_files=data_files,
        fingerprints=fingerprints,
        results=results,
    )


@functools.lru_cache(maxsize=4)
def _cached_baseline(path: str, state_dir: str | None) -> Baseline:
    return load_baseline(Path(path), Path(state_dir) if state_dir else None)


def drift_spec(baseline: Baseline) -> dict[str, Any]:
    """The spec of a drift run, derived from the baseline's own spec (see the module doc).

    Raises:
        EvidenceInvalidError: the baseline holds no fingerprint and no check result.
    """
    spec = yamlio.safe_load(baseline.spec_text.decode("utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("tests"), list):
        raise EvidenceInvalidError(
            "the baseline's spec.yaml has no tests", where=str(baseline.path)
        )
    with_fp = set(baseline.fingerprints)
    reevaluate = {test_id for (test_id, target) in baseline.results if target not in with_fp}
    tests = []
    for test in spec["tests"]:
        if not isinstance(test, dict):
            continue
        if test.get("check") in FINGERPRINT_CHECKS:
            if not baseline.fingerprints:
                continue  # nothing to compare a live fingerprint with
            # The fingerprinted subjects' kinds (a master's clones too); all kinds when the
            # baseline does not say.
            kinds = set(baseline.kinds) | ({"clone"} if "master_vm" in baseline.kinds else set())
            tests.append(
                {
                    **test,
                    "applies_to": [k for k in target_kinds() if k in kinds] or list(target_kinds()),
                    "risk": ["high", "medium", "low"],
                    "scope": ["master", "clone"],
                }
            )
        elif test.get("check") == "template_fingerprint":
            continue  # template facts: the image's, not a live target's
        elif test.get("id") in reevaluate:
            tests.append(test)
    if not tests:
        raise EvidenceInvalidError(
            "the baseline has no fingerprint and no check result to compare with",
            where=str(baseline.path),
        )
    meta = dict(spec.get("metadata") or {})
    drift = {
        "apiVersion": spec.get("apiVersion", "vqual/v1"),
        "kind": spec.get("kind", "Protocol"),
        "metadata": {
            "name": f"drift-{meta.get('name', 'baseline')}"[:64],
            "title": f"Drift from the baseline {baseline.change_id}/{baseline.run_id}",
            "version": str(meta.get("version", "1")),
            "description": (
                f"Derived by vqual drift from {meta.get('name')} {meta.get('version')}, "
                f"baseline seal {baseline.seal}."
            ),
        },
        "requirements": spec.get("requirements") or [],
        "tests": tests,
    }
    if spec.get("data_files"):
        drift["data_files"] = spec["data_files"]
    return drift


def _difference_result(
    test: Mapping[str, Any], base: Mapping[str, Any], diff: Difference, where: str
) -> dict[str, Any]:
    return {
        **base,
        "test_id": f"{test['test_id']}:{diff.what}:{diff.where}",
        "title": f"Drift: {diff.what} {diff.where}",
        "expected": {"op": "equals", "value": diff.baseline},
        "observed": diff.live,
        "verdict": "fail",
        "reason": diff.text(),
        "raw": None,
        "method": where,
    }


def compare_target(
    baseline: Baseline,
    target: str,
    tests: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
    live: Fingerprint | None,
    allowed: AllowedDifferences | None = None,
) -> tuple[list[dict[str, Any]], list[Difference]]:
    """The drift run's results for one target, and its differences.

    Fingerprint tests: pass with no difference, fail with one extra failed result per
    difference, error when either fingerprint is missing. Other tests: fail when verdict or
    observed value differ from the baseline's result for the same test and target.
    """
    by_id = {str(t["test_id"]): t for t in tests}
    # One comparison per target, named after its guest fingerprint test where it has one
    # (differences are mostly the guest's), else its first fingerprint test.
    fp_ids = [str(t["test_id"]) for t in tests if t.get("check") in FINGERPRINT_CHECKS]
    host_ids = [str(t["test_id"]) for t in tests if t.get("check") == "host_fingerprint"]
    comparer = (host_ids or fp_ids or [""])[0]
    out: list[dict[str, Any]] = []
    differences: list[Difference] = []
    where = f"fingerprint compare with baseline {baseline.change_id}/{baseline.run_id} (seal {baseline.seal[:16]})"
    for result in results:
        test = by_id.get(str(result.get("test_id")))
        if test is None:
            out.append(dict(result))
        elif test.get("check") in FINGERPRINT_CHECKS:
            found = _fingerprint_results(
                baseline, target, test, result, live, allowed, comparer=comparer, where=where
            )
            out.extend(found[0])
            differences.extend(found[1])
        else:
            mine, diff = _check_result(baseline, target, result)
            out.append(mine)
            if diff is not None:
                differences.append(diff)
    return out, differences


def _fingerprint_results(
    baseline: Baseline,
    target: str,
    test: Mapping[str, Any],
    result: Mapping[str, Any],
    live: Fingerprint | None,
    allowed: AllowedDifferences | None,
    *,
    comparer: str,
    where: str,
) -> tuple[list[dict[str, Any]], list[Difference]]:
    """A fingerprint test's result (and one per difference) and its differences."""
    base_fp = baseline.fingerprint_for(target)
    summary = dict(result)
    summary["method"] = where
    if result.get("verdict") == "error" or live is None:
        summary.update(verdict="error", reason=result.get("reason") or "no live fingerprint")
        return [summary], []
    if base_fp is None:
        have = ", ".join(sorted(baseline.fingerprints)) or "none"
        summary.update(
            verdict="error",
            reason=f"the baseline has no fingerprint of {target} (it has: {have})",
        )
        return [summary], []
    if str(test["test_id"]) != comparer:
        # One comparison per target; the other fingerprint tests say where it is.
        summary.update(verdict="pass", reason=f"compared with the baseline in {comparer}")
        return [summary], []
    found = compare(base_fp, live, allowed)
    summary.update(
        expected={"op": "equals", "baseline": base_fp.subject, "digest": base_fp.digest()},
        observed={"digest": live.digest(), "differences": len(found)},
        verdict="fail" if found else "pass",
        reason=(
            f"{len(found)} difference(s) from {base_fp.subject}'s baseline fingerprint"
            if found
            else f"no difference from {base_fp.subject}'s baseline fingerprint"
        ),
    )
    return [summary, *(_difference_result(test, summary, d, where) for d in found)], found


def _check_result(
    baseline: Baseline, target: str, result: Mapping[str, Any]
) -> tuple[dict[str, Any], Difference | None]:
    """Another test's result judged against the baseline's for the same test and target."""
    base = baseline.results.get((str(result.get("test_id")), target))
    mine = dict(result)
    if base is None:
        return mine, None
    same = base.get("verdict") == result.get("verdict") and base.get("observed") == result.get(
        "observed"
    )
    if not same:
        diff = Difference(
            "check",
            str(result.get("test_id")),
            {"verdict": base.get("verdict"), "observed": base.get("observed")},
            {"verdict": result.get("verdict"), "observed": result.get("observed")},
            target,
        )
        mine.update(
            verdict="fail" if result.get("verdict") != "error" else "error", reason=diff.text()
        )
        return mine, diff
    if mine.get("verdict") == "fail":
        # Failing as it failed in the baseline: not drift.
        mine.update(verdict="pass", reason="as in the baseline: " + str(result.get("reason")))
    return mine, None


def drift_results(
    baseline_path: str,
    target: str,
    tests: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
    live: Fingerprint | None,
    allowed: Mapping[str, Any] | None = None,
    state_dir: str | None = None,
) -> list[dict[str, Any]]:
    """What the ``qualify`` action records on a drift run (:func:`compare_target`); a
    baseline that no longer verifies makes every result ``error`` with the reason."""
    try:
        baseline = _cached_baseline(baseline_path, state_dir)
        allowed_d = AllowedDifferences.from_json(allowed) if allowed else None
    except VqualError as exc:
        return [dict(r, verdict="error", reason=exc.one_line()) for r in results]
    return compare_target(baseline, target, tests, results, live, allowed_d)[0]
