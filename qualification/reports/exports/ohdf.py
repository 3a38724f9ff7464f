"""OASIS Heimdall Data Format (OHDF, MITRE's exec JSON): one profile, a control per result.

The mapping (docs/exports.md): one profile (the spec) whose controls are the results, one
control per test and target (id ``<test id>@<target>``), because MITRE's tools count
controls and a bundle counts results. Each control has one result: pass ``passed``, fail
``failed``, error ``error`` and not-executed ``skipped`` with the reason as skip message.
A waived result keeps its ``failed`` result (what was observed) and carries ``waiver_data``
with the deviation's justification, expiry and approver; ``skipped_due_to_waiver`` is set
because that is how Heimdall and ``saf`` tell a waived control (shown "Not Applicable"),
although the test ran (``run: true``). Impact comes from the target's risk class.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from qualification.reports.exports.source import ExportSource, SpecTest, result_name
from qualification.reports.model import Result
from qualification.reports.values import show, show_expected

#: vqual verdict -> status of the control's one result.
STATUS: dict[str, str] = {
    "pass": "passed",
    "fail": "failed",
    "error": "error",
    "not-executed": "skipped",
    "waived": "failed",
}

#: Target risk class -> control impact (Heimdall: >= 0.7 high, >= 0.4 medium, else low).
IMPACT: dict[str, float] = {"high": 0.7, "medium": 0.5, "low": 0.3}
DEFAULT_IMPACT = 0.5


def to_ohdf(source: ExportSource) -> dict[str, Any]:
    """The OHDF exec JSON of a verified run (a JSON-ready mapping)."""
    run = source.run
    risk = {t.name: t.risk for t in run.targets}
    controls = [_control(source, r, risk.get(r.target)) for r in source.results]
    spec_name = str(source.spec.get("name") or "vqual")
    profile = {
        "name": spec_name,
        "title": f"vqual qualification {run.change_id} {run.run_id}",
        "version": _opt(source.spec.get("version")),
        "summary": f"spec {spec_name}; seal {source.seal}",
        "maintainer": None,
        "license": None,
        # The profile's digest: the spec's, as sealed in the bundle.
        "sha256": str(source.spec.get("digest") or _digest(controls)),
        "supports": [],
        "attributes": [],
        "groups": [
            {"id": t.id, "title": t.title,
             "controls": [c["id"] for c in controls if c["tags"]["test_id"] == t.id]}
            for t in source.tests
        ],
        "controls": controls,
        "status": "loaded",
    }
    duration = _duration(source)
    return {
        "platform": {"name": "vqual", "release": source.tool_version,
                     "target_id": f"{run.change_id}/{run.run_id}"},
        "version": source.tool_version,
        "statistics": {"duration": duration},
        "profiles": [profile],
        "passthrough": {
            "vqual": {
                "change_id": run.change_id,
                "run_id": run.run_id,
                "seal": source.seal,
                "verdict": run.verdict(),
                "counts": source.counts(),
            }
        },
    }


def _control(source: ExportSource, result: Result, risk: str | None) -> dict[str, Any]:
    test = source.test(result.test_id)
    outcome: dict[str, Any] = {
        "status": STATUS.get(result.verdict, "error"),  # unknown: never passed
        "code_desc": _code_desc(result),
        "start_time": result.started or source.run.started_at or "",
        "run_time": result.duration_ms / 1000.0 if result.duration_ms is not None else None,
        "resource": result.target,
    }
    if result.verdict == "not-executed":
        outcome["skip_message"] = result.reason or "not executed"
    elif result.verdict != "pass":
        outcome["message"] = (
            f"{result.reason + '; ' if result.reason else ''}"
            f"expected {show_expected(result.expected, 500)}; observed {show(result.observed, 500)}"
        )
    control: dict[str, Any] = {
        "id": result_name(result),
        "title": f"{result.test_id} {test.title if test else result.title}".strip(),
        "desc": _desc(test),
        "impact": IMPACT.get(risk or "", DEFAULT_IMPACT),
        "refs": [],
        "tags": {
            "test_id": result.test_id,
            "target": result.target,
            "protocol": result.protocol,
            "requirements": list(result.requirements),
            "verdict": result.verdict,
        },
        "code": None,
        "source_location": {"ref": "spec.yaml", "line": None},  # the bundle's sealed copy
        "results": [outcome],
    }
    if result.verdict == "waived":
        control["waiver_data"] = _waiver(source, result)
    return control


def _code_desc(result: Result) -> str:
    return f"{result.test_id} on {result.target}: {result.method or result.check or 'check'}"


def _desc(test: SpecTest | None) -> str | None:
    if test is None:
        return None
    return f"{test.title}. Acceptance: {test.acceptance}" if test.acceptance else test.title


def _waiver(source: ExportSource, result: Result) -> dict[str, Any]:
    dev_id = result.deviation or ""
    waiver = source.waivers.get(dev_id)
    by = f", approved by {waiver.approved_by}" if waiver and waiver.approved_by else ""
    return {
        "justification": waiver.justification if waiver else None,
        "expiration_date": waiver.expiry if waiver else None,
        "run": True,
        "skipped_due_to_waiver": True,
        "message": f"waived by deviation {dev_id or '(id missing)'}{by}",
    }


def _duration(source: ExportSource) -> float | None:
    """The run's wall time in seconds, ``run.start`` to its end."""
    start, end = source.run.started_at, source.run.ended_at
    try:
        began = datetime.fromisoformat(start) if start else None
        ended = datetime.fromisoformat(end) if end else None
    except ValueError:
        return None
    return (ended - began).total_seconds() if began and ended else None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
