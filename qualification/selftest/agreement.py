"""OQ self check that a run must agree with itself (VQ-31): a failed result turned into a pass
and the whole chain signed again with the executor's own key (every signature and ``prev``
then verifies) is refused, because ``run.end``'s counts, the sealed JUnit and the sealed
report still say the test failed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from qualification.evidence.bundle import RECORDS
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import CHECK_RESULT, RUN_START
from qualification.evidence.records import ZERO_DIGEST
from qualification.execution.recorder import add_renderings
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch
from qualification.signing.dsse import parse_envelope, sign_envelope

#: What must name the flipped test: the sealed files and run.end's counts.
NAMED = ("run.end", "junit.xml", "report.html")
WANT = {"honest": "valid", "resigned": "invalid", "named": list(NAMED)}


def _run(s: Scratch) -> Path:
    """A sealed run of two tests, one failed, with its JUnit and report rendered."""
    w = s.writer()
    planned = [{"test_id": t, "target": "t", "protocol": "IQ"} for t in ("T-1", "T-2")]
    w.append(RUN_START, {"mode": "selftest", "planned": planned, "prev_run_seal": None})
    for test, verdict in (("T-1", "pass"), ("T-2", "fail")):
        w.append(
            CHECK_RESULT,
            {"test_id": test, "title": f"selftest {test}", "target": "t", "protocol": "IQ",
             "verdict": verdict, "reason": None if verdict == "pass" else "selftest",
             "raw": None},
        )
    add_renderings(w)
    w.seal({"pass": 1, "fail": 1}, 2, 2, "fail")
    return w.path


def _resign_as_pass(s: Scratch, bundle: Path) -> None:
    """T-2 turned into a pass; every record signed again by the executor, chain rebuilt."""
    out: list[bytes] = []
    prev = ZERO_DIGEST
    for line in (bundle / RECORDS).read_bytes().splitlines():
        rec = json.loads(parse_envelope(line).payload)
        if rec["kind"] == CHECK_RESULT and rec["data"]["test_id"] == "T-2":
            rec["data"]["verdict"] = "pass"
        rec.update(seq=len(out), prev=prev)
        new = sign_envelope(canonical_bytes(rec), s.signer).to_bytes()
        out.append(new)
        prev = hashlib.sha256(new).hexdigest()
    (bundle / RECORDS).write_bytes(b"".join(line + b"\n" for line in out))


def resigned_refused(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    bundle = _run(s)
    honest = s.status(bundle)
    _resign_as_pass(s, bundle)
    res = s.verify(bundle)
    # run.end names the count (fail), the sealed files name the test.
    named = [
        where for where in NAMED
        if any(p.startswith(where) and ("T-2" in p or ": counts fail" in p) for p in res.problems)
    ]
    got = {"honest": honest, "resigned": res.status, "named": named}
    return Outcome(got == WANT, got, None if got == WANT else "; ".join(res.problems[:3]))


def agreement_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: verify refuses a tampered run signed again with the executor's own key."""
    return [
        SelfCheck(
            "ST-OQ-15",
            "a run whose failed result was turned into a pass and signed again with the "
            "executor's own key is refused",
            "OQ",
            "VQ-31",
            "a scratch run (a pass, a fail, its JUnit and report) verified, then its fail "
            "rewritten as a pass and every record re-signed; verified again",
            {"op": "equals", "value": WANT},
            lambda: resigned_refused(scratch),
        )
    ]
