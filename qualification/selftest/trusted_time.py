"""OQ self checks of format v2: trusted time as records (VQ-41) and the format's rules
(VQ-44). No TSA is asked: ST-OQ-18 reads the golden v2 bundle's tokens (from the lab's TSA,
with its root in the bundle's trust store), ST-OQ-19 writes scratch bundles."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from qualification.evidence.bundle import RECORDS
from qualification.evidence.kinds import CHECK_RESULT, RUN_START
from qualification.evidence.verify import verify_bundle
from qualification.selftest.base import Outcome, SelfCheck, never_run
from qualification.selftest.evidence import Scratch
from qualification.selftest.timestamp import _other_root
from qualification.signing import TrustStore

#: ST-OQ-18: case -> status, and the words a refusal must say.
TIME_WANT = {"as stored": "valid", "timestamp dropped": "invalid", "TSA not trusted": "invalid"}
_TIME_BECAUSE = {"timestamp dropped": "has no timestamp record after it",
                 "TSA not trusted": "does not chain to the trusted TSA roots"}
#: ST-OQ-19: what each bundle must verify as.
FORMAT_WANT = {
    "golden v1": ["valid", "format v1 (legacy)"],
    "v2 with its renderings": ["valid", "format v2"],
    "v2 with placeholders": ["invalid", "format v2"],
}


def _judge(got: dict[str, str], said: dict[str, str], want: dict[str, str],
           because: dict[str, str]) -> Outcome:
    wrong = [
        f"{case}: {got.get(case)} ({said.get(case, '')})"
        for case in want
        if got.get(case) != want[case] or because.get(case, "") not in said.get(case, "")
    ]
    return Outcome(not wrong, got, "; ".join(wrong) or None)


def golden_tokens(v2: Path) -> Outcome:
    """The golden v2 bundle's tokens hold; dropping the last timestamp record, or judging
    with another CA as the TSA's root, is refused for that reason."""
    expected = json.loads((v2 / "expected.json").read_text(encoding="utf-8"))
    trust = TrustStore.load(v2 / "trust.yaml")
    assert trust.tsa is not None, "the golden v2 trust store names its TSA"
    got: dict[str, str] = {}
    said: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vqual-selftest-") as tmp:
        bundle = Path(tmp) / "bundle"
        shutil.copytree(v2 / expected["bundle"], bundle)
        res = verify_bundle(bundle, trust, workers=1)
        got["as stored"] = res.status
        said["as stored"] = f"{len(res.trusted_time)} tokens"
        if len(res.trusted_time) != len(expected["trusted_time"]):
            got["as stored"] = "tokens missing"
        other = replace(trust, tsa=replace(trust.tsa, roots_pem=_other_root().decode()))
        res = verify_bundle(bundle, other, workers=1)
        got["TSA not trusted"], said["TSA not trusted"] = res.status, "; ".join(res.problems)
        lines = (bundle / RECORDS).read_bytes().splitlines(keepends=True)
        (bundle / RECORDS).write_bytes(b"".join(lines[:-1]))
        res = verify_bundle(bundle, trust, workers=1)
        got["timestamp dropped"], said["timestamp dropped"] = res.status, "; ".join(res.problems)
    return _judge(got, said, TIME_WANT, _TIME_BECAUSE)


def format_rules(v1: Path, scratch: Callable[[], Scratch]) -> Outcome:
    """v1 verifies as the legacy format; a v2 bundle with its JUnit and report verifies, with
    v1's placeholders it is refused."""
    expected = json.loads((v1 / "expected.json").read_text(encoding="utf-8"))
    res = verify_bundle(v1 / expected["bundle"], TrustStore.load(v1 / "trust.yaml"), workers=1)
    got = {"golden v1": [res.status, res.format_text]}
    placeholders = v1 / expected["bundle"]
    s = scratch()
    for case, rendered in (("v2 with its renderings", True), ("v2 with placeholders", False)):
        w = s.writer()
        w.append(RUN_START, {"mode": "selftest", "planned": [
            {"test_id": "T-1", "target": "t", "protocol": "IQ"}]})
        w.append(CHECK_RESULT, {"test_id": "T-1", "target": "t", "protocol": "IQ",
                                "verdict": "pass", "raw": None})
        if rendered:
            s.seal(w, {"pass": 1}, 1, 1, "pass")
        else:
            for name in ("junit.xml", "report.html"):
                w.add_file(name, (placeholders / name).read_bytes())
            w.seal({"pass": 1}, 1, 1, "pass")
        res = s.verify(w.path)
        got[case] = [res.status, res.format_text]
    wrong = [f"{case}: {got[case]}" for case in FORMAT_WANT if got[case] != FORMAT_WANT[case]]
    return Outcome(not wrong, got, "; ".join(wrong) or None)


def trusted_time_checks(golden: Path | None, scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: ST-OQ-18 (VQ-41) and ST-OQ-19 (VQ-44); not-executed without the golden bundles."""
    v1, v2 = (golden / "v1", golden / "v2") if golden else (None, None)
    missing = "no golden bundles here (run from the source tree or give --golden DIR)"
    return [
        SelfCheck(
            "ST-OQ-18",
            "a sealed run's and a signature's time-stamp tokens hold; a dropped timestamp "
            "record or a TSA outside the store's roots is refused",
            "OQ",
            "VQ-41",
            "verify_bundle on a copy of the golden v2 bundle: as stored, with the last "
            "timestamp record dropped, with another CA as the store's TSA root",
            {"op": "equals", "value": TIME_WANT},
            (lambda: golden_tokens(v2)) if v2 and v2.is_dir() else never_run,
            None if v2 and v2.is_dir() else missing,
        ),
        SelfCheck(
            "ST-OQ-19",
            "format v1 verifies as legacy; format v2 refuses JUnit and report placeholders",
            "OQ",
            "VQ-44",
            "verify_bundle on the golden v1 bundle, and on scratch v2 bundles sealed with "
            "rendered and with placeholder JUnit and report",
            {"op": "equals", "value": FORMAT_WANT},
            (lambda: format_rules(v1, scratch)) if v1 and v1.is_dir() else never_run,
            None if v1 and v1.is_dir() else missing,
        ),
    ]
