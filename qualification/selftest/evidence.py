"""OQ self checks on evidence: the golden bundles verify as stored (VQ-02), and known-good
and known-bad bundles, written for real in a scratch directory, get the expected verdicts
(VQ-03 to VQ-06)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

from qualification.evidence.bundle import BundleWriter, append_signature
from qualification.evidence.kinds import CHECK_RESULT, RUN_START
from qualification.evidence.reader import read_bundle
from qualification.evidence.result import VerificationResult
from qualification.evidence.verify import verify_bundle
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.selftest.base import Outcome, SelfCheck, never_run
from qualification.signing import Ed25519Signer, TrustStore
from qualification.timeutil import utc_now as utc_now_dt


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


class Scratch:
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

    def writer(self) -> BundleWriter:
        """A new bundle of a run of its own, signed by the scratch executor."""
        self._n += 1
        run_id = f"20000101T000000Z-{self._n:06x}"
        return BundleWriter.create(self.root / "ev", self.CHANGE, run_id, self.signer, "selftest")

    def bundle(self) -> Path:
        w = self.writer()
        w.append(
            RUN_START,
            {
                "mode": "selftest",
                "planned": [{"test_id": "T-1", "target": "t", "protocol": "IQ"}],
                "nonce": self._n,
            },
        )
        w.add_file("spec.yaml", b"apiVersion: vqual/v1\n")
        w.append(
            CHECK_RESULT,
            {"test_id": "T-1", "target": "t", "protocol": "IQ", "verdict": "pass", "raw": None},
        )
        self.seal(w, {"pass": 1}, 1, 1, "pass")
        return w.path

    @staticmethod
    def seal(w: BundleWriter, counts: dict[str, int], planned: int, executed: int,
             verdict: str) -> str:
        """Render the JUnit and the report of the records (format v2 seals no placeholders),
        then seal."""
        w.sync()
        records = read_bundle(w.path).records
        w.add_file("junit.xml", render_junit(records).encode("utf-8"))
        w.add_file("report.html", render_report(records).encode("utf-8"))
        return w.seal(counts, planned, executed, verdict)

    def verify(self, path: Path) -> VerificationResult:
        return verify_bundle(path, self.trust, workers=1)

    def status(self, path: Path) -> str:
        return self.verify(path).status


def _untouched(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    got = s.status(s.bundle())
    return Outcome(got == "valid", got)


def _record_edit(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    path = s.bundle() / "records.jsonl"
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01  # one bit inside the first record's base64 payload
    path.write_bytes(bytes(data))
    got = s.status(path.parent)
    return Outcome(got == "invalid", got)


def _file_edit(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    path = s.bundle() / "spec.yaml"
    path.write_bytes(path.read_bytes().replace(b"v1", b"v2"))
    got = s.status(path.parent)
    return Outcome(got == "invalid", got)


def _crash_cut(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    path = s.bundle() / "records.jsonl"
    lines = path.read_bytes().split(b"\n")
    # Keep run.start and a cut half of the next line, as a crash mid-write leaves it.
    path.write_bytes(lines[0] + b"\n" + lines[1][: len(lines[1]) // 2])
    for name in ("manifest.json",):
        (path.parent / name).unlink()
    got = s.status(path.parent)
    return Outcome(got == "incomplete", got)


def _moved_signature(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    first, second = s.bundle(), s.bundle()
    append_signature(first, s.signer, {"meaning": "reviewed", "name": "Selftest executor"})
    stolen = (first / "records.jsonl").read_bytes().splitlines(keepends=True)[-1]
    with open(second / "records.jsonl", "ab") as fh:
        fh.write(stolen)
    got = (s.status(first), s.status(second))
    return Outcome(got == ("valid", "invalid"), list(got))


def scratch_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
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


def golden_checks(golden: Path | None) -> list[SelfCheck]:
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
                never_run,
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
