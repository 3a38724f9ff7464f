"""``vqual selftest``: installation and operational qualification of vqual itself.

Checks that the installed vqual and its dependencies are the versions it declares, that the
golden bundles (one per format version) still verify as stored, and that known-good and
known-bad evidence gets the expected verdicts (a fresh bundle, one edited byte in a record and
in a sealed file, a crash-cut last line, a signature copied onto another run), and that the
check library decides fixed cases as documented. The outcome is written as an evidence bundle
of its own (``mode: selftest``), signed by the executor key, that ``vqual verify`` checks like
any other. The requirement ids are vqual's own, from docs/validation.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from qualification import __version__
from qualification.checks import operators
from qualification.config import config_citation
from qualification.errors import BadInputError, exit_code_for_verdict
from qualification.evidence.bundle import BundleWriter, append_signature, latest_seal
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.records import utc_now
from qualification.evidence.verify import verify_bundle
from qualification.execution import controller
from qualification.execution.collection import collection_version, find_collection_root
from qualification.execution.recorder import overall_verdict, records_as_dicts
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.review.documents import check_signer
from qualification.review.signed import load_trust
from qualification.rollout.change import load_change
from qualification.signing import Ed25519Signer, Signer, TrustStore
from qualification.spec.change import validate_change_id
from qualification.state import trust_digest
from qualification.timeutil import new_run_id
from qualification.timeutil import utc_now as utc_now_dt

#: vqual's own requirements (docs/validation.md).
REQUIREMENTS = {
    "VQ-01": "vqual and its dependencies are installed in the declared versions",
    "VQ-02": "bundles of every format version ever written still verify",
    "VQ-03": "complete, untouched evidence verifies valid",
    "VQ-04": "any edit of a record or a sealed file makes evidence invalid",
    "VQ-05": "a crashed run is reported incomplete, not valid",
    "VQ-06": "a signature cannot be moved to another run",
    "VQ-07": "checks decide observed values as documented",
}


@dataclass
class Outcome:
    ok: bool
    observed: Any
    reason: str | None = None


@dataclass(frozen=True)
class SelfCheck:
    test_id: str
    title: str
    protocol: str
    requirement: str
    method: str
    expected: dict[str, Any]
    run: Callable[[], Outcome]
    #: why the check cannot be performed here (recorded not-executed), or None
    not_executed: str | None = None


def repo_golden_dir() -> Path | None:
    """The golden bundles shipped in the source tree, if vqual runs from one."""
    candidate = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden"
    return candidate if candidate.is_dir() else None


# ------------------------------------------------------------------------- IQ checks


def _installed_version() -> Outcome:
    try:
        installed = metadata.version("vqual")
    except metadata.PackageNotFoundError:
        return Outcome(False, None, "the vqual distribution is not installed")
    ok = installed == __version__
    return Outcome(ok, installed, None if ok else f"package says {__version__}")


def _collection_check(root: Path) -> Callable[[], Outcome]:
    def run() -> Outcome:
        found = collection_version(root)
        ok = found == __version__
        reason = None if ok else f"the collection at {root} says {found or 'no version'}"
        return Outcome(ok, found, reason)

    return run


def _collection_root() -> tuple[Path | None, str | None]:
    """The collection this vqual runs, or why none was found (a verify-only install)."""
    try:
        return find_collection_root(), None
    except BadInputError as exc:
        return None, f"{exc.one_line()} (only needed to run qualifications)"


def _requirement_check(req: Requirement) -> Callable[[], Outcome]:
    def run() -> Outcome:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return Outcome(False, None, f"{req.name} is not installed")
        ok = req.specifier.contains(installed, prereleases=True)
        return Outcome(ok, installed, None if ok else f"{installed} is not {req.specifier}")

    return run


def _python_version() -> Outcome:
    try:
        declared = metadata.metadata("vqual")["Requires-Python"] or ""
    except metadata.PackageNotFoundError:
        return Outcome(False, platform.python_version(), "the vqual distribution is not installed")
    ok = SpecifierSet(declared).contains(platform.python_version())
    return Outcome(ok, platform.python_version(), None if ok else f"needs Python {declared}")


def _dependencies() -> list[Requirement]:
    try:
        declared = metadata.requires("vqual") or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for text in declared:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        # Only what this installation needs (no extras, markers that apply here).
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            found.append(req)
    return found


# ------------------------------------------------------------------------- OQ checks


def _golden_check(version_dir: Path) -> Callable[[], Outcome]:
    def run() -> Outcome:
        expected = json.loads((version_dir / "expected.json").read_text(encoding="utf-8"))
        trust = TrustStore.load(version_dir / "trust.yaml")
        res = verify_bundle(version_dir / expected["bundle"], trust, workers=1)
        observed = {"status": res.status, "seal_digest": res.seal_digest, "counts": res.counts}
        want = {
            "status": expected["status"],
            "seal_digest": expected["seal_digest"],
            "counts": expected["counts"],
        }
        ok = observed == want
        return Outcome(ok, observed, None if ok else "; ".join(res.problems[:3]) or "differs")

    return run


class _Scratch:
    """Known-good and known-bad bundles, written in a temporary directory for real."""

    CHANGE = "SELFTEST"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.signer = Ed25519Signer.generate()
        self.trust = TrustStore.empty(root / "trust.yaml")
        self.trust.add_key(
            public_key_pem=self.signer.public_pem(),
            name="Selftest executor",
            identity="selftest",
            roles=["executor", "reviewer"],
            valid_from=utc_now_dt().replace(year=2000),
            throwaway=True,
        )
        self.trust.save()
        self._n = 0

    def bundle(self) -> Path:
        self._n += 1
        run_id = f"20000101T000000Z-{self._n:06x}"
        w = BundleWriter.create(self.root / "ev", self.CHANGE, run_id, self.signer, "selftest")
        w.append(
            "run.start",
            {
                "mode": "selftest",
                "planned": [{"test_id": "T-1", "target": "t", "protocol": "IQ"}],
                "nonce": self._n,
            },
        )
        w.add_file("spec.yaml", b"apiVersion: vqual/v1\n")
        w.append(
            "check.result",
            {"test_id": "T-1", "target": "t", "protocol": "IQ", "verdict": "pass", "raw": None},
        )
        w.seal({"pass": 1}, 1, 1, "pass")
        return w.path

    def status(self, path: Path) -> str:
        return verify_bundle(path, self.trust, workers=1).status


def _untouched(scratch: Callable[[], _Scratch]) -> Outcome:
    s = scratch()
    got = s.status(s.bundle())
    return Outcome(got == "valid", got)


def _record_edit(scratch: Callable[[], _Scratch]) -> Outcome:
    s = scratch()
    path = s.bundle() / "records.jsonl"
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01  # one bit inside the first record's base64 payload
    path.write_bytes(bytes(data))
    got = s.status(path.parent)
    return Outcome(got == "invalid", got)


def _file_edit(scratch: Callable[[], _Scratch]) -> Outcome:
    s = scratch()
    path = s.bundle() / "spec.yaml"
    path.write_bytes(path.read_bytes().replace(b"v1", b"v2"))
    got = s.status(path.parent)
    return Outcome(got == "invalid", got)


def _crash_cut(scratch: Callable[[], _Scratch]) -> Outcome:
    s = scratch()
    path = s.bundle() / "records.jsonl"
    lines = path.read_bytes().split(b"\n")
    # Keep run.start and a cut half of the next line, as a crash mid-write leaves it.
    path.write_bytes(lines[0] + b"\n" + lines[1][: len(lines[1]) // 2])
    for name in ("manifest.json",):
        (path.parent / name).unlink()
    got = s.status(path.parent)
    return Outcome(got == "incomplete", got)


def _moved_signature(scratch: Callable[[], _Scratch]) -> Outcome:
    s = scratch()
    first, second = s.bundle(), s.bundle()
    append_signature(first, s.signer, {"meaning": "reviewed", "name": "Selftest executor"})
    stolen = (first / "records.jsonl").read_bytes().splitlines(keepends=True)[-1]
    with open(second / "records.jsonl", "ab") as fh:
        fh.write(stolen)
    got = (s.status(first), s.status(second))
    return Outcome(got == ("valid", "invalid"), list(got))


def _scratch_checks(scratch: Callable[[], _Scratch]) -> list[SelfCheck]:
    eq = {"op": "equals"}
    return [
        SelfCheck(
            "ST-OQ-02",
            "untouched bundle verifies valid",
            "OQ",
            "VQ-03",
            "write a bundle, verify_bundle",
            {**eq, "value": "valid"},
            functools.partial(_untouched, scratch),
        ),
        SelfCheck(
            "ST-OQ-03",
            "one edited bit in a record is invalid",
            "OQ",
            "VQ-04",
            "flip one bit of records.jsonl, verify_bundle",
            {**eq, "value": "invalid"},
            functools.partial(_record_edit, scratch),
        ),
        SelfCheck(
            "ST-OQ-04",
            "an edited sealed file is invalid",
            "OQ",
            "VQ-04",
            "edit spec.yaml, verify_bundle",
            {**eq, "value": "invalid"},
            functools.partial(_file_edit, scratch),
        ),
        SelfCheck(
            "ST-OQ-05",
            "a crash-cut run is incomplete",
            "OQ",
            "VQ-05",
            "cut the records mid-line, verify_bundle",
            {**eq, "value": "incomplete"},
            functools.partial(_crash_cut, scratch),
        ),
        SelfCheck(
            "ST-OQ-06",
            "a signature moved to another run is invalid",
            "OQ",
            "VQ-06",
            "copy a signature line, verify both",
            {**eq, "value": ["valid", "invalid"]},
            functools.partial(_moved_signature, scratch),
        ),
    ]


#: (observed, expectation, whether it must hold) decided by the check library.
_OPERATOR_CASES: list[tuple[Any, dict[str, Any], bool]] = [
    ("yes", {"op": "equals", "value": "yes"}, True),
    ("no", {"op": "equals", "value": "yes"}, False),
    ("4096", {"op": "range", "min": 1024, "max": 8192}, True),
    (16384, {"op": "range", "min": 1024, "max": 8192}, False),
    ("8.0.2-1", {"op": "version", "cmp": ">=", "value": "8.0.1-3", "scheme": "debian"}, True),
    ("1.10", {"op": "version", "cmp": "<", "value": "1.9", "scheme": "pep440"}, False),
    (
        "PermitRootLogin no",
        {"op": "regex", "value": "PermitRootLogin (no|prohibit-password)"},
        True,
    ),
    ([], {"op": "absent"}, True),
]


def _operators() -> Outcome:
    wrong = []
    for observed, expect, want in _OPERATOR_CASES:
        ok, _ = operators.apply(observed, expect)
        if ok != want:
            wrong.append(f"{observed!r} {expect}: {ok}")
    return Outcome(not wrong, len(_OPERATOR_CASES) - len(wrong), "; ".join(wrong) or None)


#: docs/formats.md, "Verdicts and exit codes": what a finished run of each verdict returns.
_DOCUMENTED_EXITS = {"pass": 0, "waived": 0, "fail": 1, "not-executed": 3, "error": 4}


def _verdict_exits() -> Outcome:
    got = {verdict: exit_code_for_verdict(verdict) for verdict in _DOCUMENTED_EXITS}
    return Outcome(got == _DOCUMENTED_EXITS, got)


_HIGH_RISK_CHANGE = """\
apiVersion: vqual.change/v1
change_id: CHG0000042
title: selftest change
risk: high
cluster: selftest
target:
  packages:
    selftest-package: "1.1"
window:
  start: "2026-11-26T20:00:00Z"
  end: "2026-11-27T02:00:00Z"
"""


def _canary_rule(root: Path) -> Outcome:
    """No canary: refused; a canary: loads; a waiver: loads and keeps its reason."""
    spec = root / "canary-spec.yaml"
    spec.write_text("apiVersion: vqual/v1\n")
    cases = {
        "none": _HIGH_RISK_CHANGE,
        "canary": _HIGH_RISK_CHANGE + f"requalify:\n  spec: {spec}\n  canary_vm: vm1\n",
        "waiver": _HIGH_RISK_CHANGE + "canary_waiver:\n  reason: selftest reason\n",
    }
    got = []
    for name, text in cases.items():
        path = root / f"change-{name}.yaml"
        path.write_text(text)
        try:
            change = load_change(path)
        except BadInputError:
            got.append("refused")
            continue
        waiver = change.canary_waiver
        got.append("loaded with reason" if waiver and waiver.reason == "selftest reason"
                   else "loaded")
    want = ["refused", "loaded", "loaded with reason"]
    return Outcome(got == want, got)


def self_checks(golden: Path | None, scratch: Callable[[], _Scratch]) -> list[SelfCheck]:
    """Every check the selftest runs, in order."""
    return [
        *_installation_checks(),
        *_golden_checks(golden),
        *_scratch_checks(scratch),
        *_library_checks(scratch),
    ]


def _installation_checks() -> list[SelfCheck]:
    """IQ: vqual, Python, the collection and every dependency in their declared versions."""
    eq = {"op": "equals", "value": True}
    found = [
        SelfCheck(
            "ST-IQ-01",
            "installed vqual is this version",
            "IQ",
            "VQ-01",
            "importlib.metadata.version('vqual')",
            {"op": "equals", "value": __version__},
            _installed_version,
        ),
        SelfCheck(
            "ST-IQ-02",
            "Python meets Requires-Python",
            "IQ",
            "VQ-01",
            "platform.python_version()",
            eq,
            _python_version,
        ),
    ]
    root, missing = _collection_root()
    found.append(
        SelfCheck(
            "ST-IQ-04",
            "the vqual.qualification collection is found and is this version",
            "IQ",
            "VQ-01",
            "galaxy.yml / MANIFEST.json of the collection vqual runs",
            {"op": "equals", "value": __version__},
            _collection_check(root) if root else (lambda: Outcome(False, None)),
            not_executed=missing,
        )
    )
    for req in _dependencies():
        found.append(
            SelfCheck(
                f"ST-IQ-03-{req.name}",
                f"dependency {req}",
                "IQ",
                "VQ-01",
                f"importlib.metadata.version({req.name!r})",
                {"op": "in_specifier", "value": str(req.specifier)},
                _requirement_check(req),
            )
        )
    return found


def _golden_checks(golden: Path | None) -> list[SelfCheck]:
    """OQ: one check per golden bundle version; not-executed where there are none."""
    versions = sorted(p for p in golden.glob("v*") if p.is_dir()) if golden else []
    if not versions:
        return [
            SelfCheck(
                "ST-OQ-01",
                "golden bundles verify",
                "OQ",
                "VQ-02",
                "verify_bundle",
                {"op": "equals", "value": "as stored in expected.json"},
                lambda: Outcome(False, None),
                not_executed="no golden bundles here (run from the source tree or give "
                "--golden DIR)",
            )
        ]
    return [
        SelfCheck(
            f"ST-OQ-01-{version_dir.name}",
            f"golden bundle {version_dir.name} verifies",
            "OQ",
            "VQ-02",
            f"verify_bundle {version_dir.name}",
            {"op": "equals", "value": "as stored in expected.json"},
            _golden_check(version_dir),
        )
        for version_dir in versions
    ]


def _library_checks(scratch: Callable[[], _Scratch]) -> list[SelfCheck]:
    """OQ: the check operators, the verdict exit codes and the OQ canary rule."""
    return [
        SelfCheck(
            "ST-OQ-07",
            "check operators decide fixed cases",
            "OQ",
            "VQ-07",
            "qualification.checks.operators.apply",
            {"op": "equals", "value": len(_OPERATOR_CASES)},
            _operators,
        ),
        SelfCheck(
            "ST-OQ-08",
            "every verdict exits with its documented code; only pass and waived exit 0",
            "OQ",
            "VQ-19",
            "qualification.errors.exit_code_for_verdict",
            {"op": "equals", "value": _DOCUMENTED_EXITS},
            _verdict_exits,
        ),
        SelfCheck(
            "ST-OQ-09",
            "a high-risk change loads only with an OQ canary or a waiver with its reason",
            "OQ",
            "VQ-20",
            "qualification.rollout.change.load_change",
            {"op": "equals", "value": ["refused", "loaded", "loaded with reason"]},
            lambda: _canary_rule(scratch().root),
        ),
    ]


# ------------------------------------------------------------------------- the run


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
        made: list[_Scratch] = []

        def scratch() -> _Scratch:
            if not made:
                made.append(_Scratch(Path(tmp)))
            return made[0]

        checks = self_checks(golden, scratch)
        run = run_id or new_run_id(utc_now_dt())
        prev = latest_seal(evidence_dir, change)
        writer = BundleWriter.create(evidence_dir, change, run, signer, initiator)
        writer.append("run.start", _run_start(checks, target, state_dir, golden, prev))
        counts: dict[str, int] = {}
        failed: list[str] = []
        for check in checks:
            data = _run_check(check, target)
            verdict = str(data["verdict"])
            if verdict != "pass":
                failed.append(f"{check.test_id}: {data['reason'] or verdict}")
            counts[verdict] = counts.get(verdict, 0) + 1
            writer.append("check.result", data)
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
) -> dict[str, Any]:
    """The selftest's ``run.start``: its built-in spec is the checks' definition."""
    definition = [
        {
            "test_id": c.test_id,
            "title": c.title,
            "requirement": c.requirement,
            "expected": c.expected,
        }
        for c in checks
    ]
    return {
        "mode": "selftest",
        "tool": {"name": "vqual", "version": __version__},
        "versions": controller.versions(),
        "controller": controller.controller_info(),
        "clock": controller.clock_status(),
        "spec": {
            "path": "builtin:selftest",
            "name": "vqual-selftest",
            "version": __version__,
            "digest": hashlib.sha256(canonical_bytes(definition)).hexdigest(),
        },
        "requirements": sorted(REQUIREMENTS),
        "data_files": [],
        "inventory": {"digest": None},
        "trust": {"digest": trust_digest(state_dir)},
        "targets": [
            {
                "name": target,
                "kinds": ["vqual"],
                "risk": "high",
                "risk_reason": "vqual decides GxP evidence",
            }
        ],
        "planned": [{"test_id": c.test_id, "target": target, "protocol": c.protocol}
                    for c in checks],
        "prev_run_seal": prev,
        "approval": None,
        "config": config_citation(state_dir),
        "golden": str(golden) if golden else None,
    }


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
