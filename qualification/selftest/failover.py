"""OQ self check of the failover OQ's verdict (VQ-88, URS-OPS-03): a failover record whose
marker read back on the other host is not the one written before the failure fails, whatever
the probe said of it; the same record with the marker intact passes."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from qualification.checks import evaluate
from qualification.checks.base import Observation
from qualification.checks.libvirt import LibvirtGuestOq
from qualification.selftest.base import Outcome, SelfCheck

FIXTURE = "failover-marker-mismatch.json"
_PARAMS = {"test": "failover", "field": "verdict"}
_EXPECT = {"op": "equals", "value": "pass"}
#: ST-OQ-36: [verdict of the fixture, verdict with its marker intact]
_WANT = ["fail", "pass"]


def _fixture() -> dict[str, Any]:
    text = resources.files("qualification.selftest").joinpath("data", FIXTURE).read_text()
    value: dict[str, Any] = json.loads(text)
    return value


def marker_mismatch_fails() -> Outcome:
    """The recorded values judged by the check: the mismatch fails, naming the marker."""
    value = _fixture()
    check = LibvirtGuestOq()
    bad = evaluate(check, Observation(value=value), _PARAMS, _EXPECT)
    intact = {**value, "marker_read": value["marker_written"]}
    good = evaluate(check, Observation(value=intact), _PARAMS, _EXPECT)
    got = [bad.verdict.value, good.verdict.value]
    wrong = []
    if got != _WANT:
        wrong.append(f"verdicts {got}, expected {_WANT} ({bad.reason}; {good.reason})")
    if "marker read back" not in (bad.reason or ""):
        wrong.append(f"the failure does not name the marker: {bad.reason}")
    return Outcome(not wrong, got, "; ".join(wrong) or None)


def failover_checks() -> list[SelfCheck]:
    """OQ: ST-OQ-36 (VQ-88)."""
    return [
        SelfCheck(
            "ST-OQ-36",
            "a failover record whose marker read back on the other host differs from the one "
            "written before the host failed fails, although the probe called it a pass",
            "OQ",
            "VQ-88",
            "qualification.checks.evaluate with libvirt_guest_oq (test failover) on the "
            f"fixture selftest/data/{FIXTURE}, and on the same record with the marker intact",
            {"op": "equals", "value": _WANT},
            marker_mismatch_fails,
        ),
    ]
