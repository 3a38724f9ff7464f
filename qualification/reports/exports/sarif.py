"""SARIF 2.1.0 (OASIS): one run of the tool ``vqual``, a rule per test, a result per check.

The mapping (docs/exports.md): a rule per spec test (id, title, acceptance criterion, URS ids
in its properties); a result per ``check.result`` whose logical location is the target.
``kind`` and ``level`` follow SARIF 3.27.9/3.27.10 (a level other than ``none`` only with
``kind: fail``): pass is ``pass``; fail is ``fail``/``error``; error (could not observe) is
``open``, the rule evaluated without enough information to decide (and a tool execution
notification of level ``error``, so dashboards show it); not-executed is
``notApplicable`` with the reason; waived is the failure it was, with an ``external``,
``accepted`` suppression naming the approved deviation (SARIF 3.35).
"""

from __future__ import annotations

from typing import Any

from qualification.reports.exports.source import ExportSource, SpecTest, result_name
from qualification.reports.model import Result
from qualification.reports.values import show, show_expected

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

#: vqual verdict -> SARIF result kind and level.
KIND_LEVEL: dict[str, tuple[str, str]] = {
    "pass": ("pass", "none"),
    "fail": ("fail", "error"),
    "error": ("open", "none"),
    "not-executed": ("notApplicable", "none"),
    "waived": ("fail", "error"),
}


def to_sarif(source: ExportSource) -> dict[str, Any]:
    """The SARIF log of a verified run (a JSON-ready mapping)."""
    run = source.run
    rule_index = {t.id: i for i, t in enumerate(source.tests)}
    logical = _logical_locations(source)
    location_index = {entry["name"]: i for i, entry in enumerate(logical)}
    results = [
        _result(source, r, rule_index[r.test_id], location_index[r.target])
        for r in source.results
    ]
    # A target that could not be observed is a problem of the execution too: say so where
    # dashboards look for one, beside its ``open`` result.
    notes = [
        {
            "level": "error",
            "message": {"text": _message(r)},
            "associatedRule": {"id": r.test_id, "index": rule_index[r.test_id]},
            "locations": [_location(r.target, location_index[r.target])],
        }
        for r in source.results
        if r.verdict == "error"
    ]
    invocation: dict[str, Any] = {"executionSuccessful": run.finished}
    if notes:
        invocation["toolExecutionNotifications"] = notes
    if run.started_at:
        invocation["startTimeUtc"] = run.started_at
    if run.ended_at:
        invocation["endTimeUtc"] = run.ended_at
    driver = {"name": "vqual", "version": source.tool_version,
              "semanticVersion": source.tool_version, "rules": [_rule(t) for t in source.tests]}
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "automationDetails": {"id": f"{run.change_id}/{run.run_id}"},
                "invocations": [invocation],
                "logicalLocations": logical,
                "results": results,
                "properties": {
                    "change_id": run.change_id,
                    "run_id": run.run_id,
                    "initiator": run.initiator,
                    "seal": source.seal,
                    "spec": dict(source.spec),
                    "verdict": run.verdict(),
                    "counts": source.counts(),
                },
            }
        ],
    }


def _logical_locations(source: ExportSource) -> list[dict[str, Any]]:
    """Every target of the run (``run.start``'s, then any other a result names), once."""
    targets = {t.name: t for t in source.run.targets}
    names = dict.fromkeys([*targets, *(r.target for r in source.results)])
    out = []
    for name in names:
        entry: dict[str, Any] = {"name": name, "fullyQualifiedName": name}
        target = targets.get(name)
        if target is not None:
            entry["properties"] = {"kinds": list(target.kinds), "risk": target.risk}
        out.append(entry)
    return out


def _location(target: str, index: int) -> dict[str, Any]:
    return {"logicalLocations": [{"index": index, "name": target, "fullyQualifiedName": target}]}


def _rule(test: SpecTest) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": test.id,
        "shortDescription": {"text": test.title},
        "properties": {
            "requirements": list(test.requirements),
            "protocol": test.protocol,
            "check": test.check,
            "tags": [test.protocol, *test.requirements],
        },
    }
    if test.acceptance:
        rule["fullDescription"] = {"text": test.acceptance}
    return rule


def _message(result: Result) -> str:
    head = {
        "pass": "passed",
        "fail": "failed",
        "error": "could not be observed",
        "not-executed": "not executed",
        "waived": f"failed, waived by deviation {result.deviation or '(id missing)'}",
    }.get(result.verdict, f"verdict {result.verdict}")
    text = f"{result.test_id} on {result.target}: {head}"
    if result.reason:
        text += f": {result.reason}"
    if result.recorded and result.verdict != "not-executed":
        text += (
            f" (expected {show_expected(result.expected, 500)}; "
            f"observed {show(result.observed, 500)})"
        )
    return text


def _result(source: ExportSource, result: Result, rule: int, location: int) -> dict[str, Any]:
    # An unknown verdict is never shown as passed.
    kind, level = KIND_LEVEL.get(result.verdict, ("fail", "error"))
    props: dict[str, Any] = {
        "verdict": result.verdict,
        "protocol": result.protocol,
        "requirements": list(result.requirements),
        "method": result.method,
        "expected": result.expected,
        "observed": result.observed,
    }
    if result.duration_ms is not None:
        props["duration_ms"] = result.duration_ms
    if result.started:
        props["started"] = result.started
    out: dict[str, Any] = {
        "ruleId": result.test_id,
        "ruleIndex": rule,
        "kind": kind,
        "level": level,
        "message": {"text": _message(result)},
        "locations": [_location(result.target, location)],
        "partialFingerprints": {"vqualResult/v1": result_name(result)},
        "properties": props,
    }
    if result.verdict == "waived":
        out["suppressions"] = [_suppression(source, result)]
    return out


def _suppression(source: ExportSource, result: Result) -> dict[str, Any]:
    dev_id = result.deviation or ""
    waiver = source.waivers.get(dev_id)
    suppression: dict[str, Any] = {
        "kind": "external",
        "status": "accepted",
        "properties": {"deviation": dev_id},
    }
    if waiver is not None:
        suppression["justification"] = waiver.justification
        suppression["properties"].update(
            {"approved_by": waiver.approved_by, "approved_at": waiver.approved_at,
             "expiry": waiver.expiry}
        )
    return suppression
