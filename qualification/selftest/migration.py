"""OQ self check of the migration summary (VQ-85): a summary citing a VM's baseline and
conversion runs by seal verifies with its change; once the conversion bundle no longer
verifies, a summary is refused (nothing written) and the change that holds one is invalid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualification.errors import EvidenceInvalidError
from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.change import verify_change
from qualification.evidence.kinds import RUN_START
from qualification.execution.migration import checked_runs, vm_entry
from qualification.execution.recorder import add_renderings
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch

CHANGE = "SELFTEST-MIGRATION"
WANT = {"summary": "valid, citing the conversion's seal",
        "conversion_edited": "refused, no summary written; the change invalid"}


def _run(s: Scratch, root: Path, run_id: str, extra: dict[str, Any]) -> BundleWriter:
    w = BundleWriter.create(root, CHANGE, run_id, s.signer, "selftest")
    w.append(RUN_START, {"mode": "selftest", "planned": [],
                         "prev_run_seal": latest_seal(root, CHANGE), **extra})
    add_renderings(w)
    w.seal({}, 0, 0, "pass")
    return w


def _summary_refused(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    root = s.root / "migration"
    base = _run(s, root, "20000101T000000Z-base00",
                {"mode": "qualify", "targets": [{"name": "vm1"}]})
    conv = _run(s, root, "20000101T000001Z-conv00", {
        "mode": "conversion", "targets": [{"name": "vm1-new"}],
        "conversion": {"baseline_seal": base.seal_digest, "source": {"subject": "vm1"}}})
    entry = vm_entry(checked_runs(root / CHANGE, s.trust), "vm1", "vm1-new")
    _run(s, root, "20000101T000002Z-summ00", {"mode": "migration", "migration": {"vms": [entry]}})
    res = verify_change(root / CHANGE, s.trust, workers=1)
    summary = ("valid, citing the conversion's seal"
               if res.status == "valid" and entry["conversion"]["seal"] == conv.seal_digest
               else f"{res.status}: {res.problems[:2]}")
    report = conv.path / "report.html"
    report.write_bytes(report.read_bytes() + b"<!-- edited -->")
    try:
        checked_runs(root / CHANGE, s.trust)
        edited = "a summary was accepted over a conversion bundle that does not verify"
    except EvidenceInvalidError:
        after = verify_change(root / CHANGE, s.trust, workers=1)
        edited = ("refused, no summary written; the change invalid" if after.status == "invalid"
                  else f"refused, but the change is {after.status}")
    got = {"summary": summary, "conversion_edited": edited}
    return Outcome(got == WANT, got)


def migration_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: a migration summary cites its conversions; one that does not verify refuses it."""
    return [
        SelfCheck(
            "ST-OQ-34",
            "a migration summary citing a conversion by its seal verifies with its change; a "
            "summary over a conversion bundle that does not verify is refused",
            "OQ",
            "VQ-85",
            "a sealed scratch baseline and conversion run and a migration summary citing their "
            "seals, verified as a change; then the conversion's report edited and a summary "
            "asked for again",
            {"op": "equals", "value": WANT},
            lambda: _summary_refused(scratch),
        )
    ]
