"""JUnit XML for CI: one testsuite per (target, protocol), written with ``junit-xml``.

Deterministic (no clock, and the host names are the targets'): the same records give the
same bytes, so the file can be sealed in the bundle. Valid against the JUnit schema of
Jenkins' xunit plugin (``tests/fixtures/schemas/junit-10.xsd``), which ``junit-xml`` alone
is not: see :func:`_fit_schema`.
"""

from __future__ import annotations

import xml.dom.minidom
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime

from junit_xml import TestCase, TestSuite, to_xml_report_string

from qualification.reports.model import Records, Result, Run, load_run
from qualification.reports.values import show, show_expected, show_raw
from qualification.verdict import Verdict


def _requirements(result: Result) -> str:
    return ", ".join(result.requirements) or "none"


def _system_out(result: Result) -> str:
    lines = [
        f"requirements: {_requirements(result)}",
        f"method: {result.method or '-'}",
        f"expected: {show_expected(result.expected)}",
        f"observed: {show(result.observed)}",
        f"verdict: {result.verdict}",
    ]
    if result.reason:
        lines.append(f"reason: {result.reason}")
    if result.verdict == Verdict.WAIVED:
        lines.append(f"waived by deviation {result.deviation or '(id missing)'}")
    raw = show_raw(result.raw, result.seq)
    if raw:
        lines.append(raw)
    return "\n".join(lines)


def _case(result: Result) -> TestCase:
    case = TestCase(
        result.name,
        classname=result.classname,
        # The observation's own time as the probe measured it, never the host's round trip
        # (duration_ms); unknown (records written before observation_ms) leaves it out.
        elapsed_sec=(result.observation_ms or 0.0) / 1000.0,
        stdout=_system_out(result),
    )
    summary = (
        f"requirements: {_requirements(result)}; expected: {show_expected(result.expected, 500)};"
        f" observed: {show(result.observed, 500)}"
    )
    if result.verdict == Verdict.FAIL:
        case.add_failure_info(message=f"failed: {summary}", output=result.reason)
    elif result.verdict == Verdict.ERROR:
        reason = result.reason or "could not observe"
        message = reason if not result.recorded else f"error: {reason}; {summary}"
        case.add_error_info(message=message, output=result.reason)
    elif result.verdict == Verdict.NOT_EXECUTED:
        case.add_skipped_info(message=f"not executed: {result.reason or 'no reason recorded'}")
    elif Verdict.parse(result.verdict) not in (Verdict.PASS, Verdict.WAIVED):
        # An unknown verdict is never shown as passed.
        case.add_error_info(message=f"unknown verdict {result.verdict!r}; {summary}")
    return case


def _suites(run: Run) -> list[TestSuite]:
    spec = run.start.get("spec")
    spec_digest = str(spec.get("digest") or "") if isinstance(spec, Mapping) else ""
    groups: dict[tuple[str, str], list[Result]] = {}
    for result in run.results:
        groups.setdefault((result.target, result.protocol), []).append(result)
    suites = []
    for (target, protocol), results in groups.items():
        suites.append(
            TestSuite(
                f"{target}.{protocol}",
                [_case(r) for r in results],
                hostname=target,
                timestamp=_timestamp(run.started_at),
                properties={
                    "change_id": run.change_id,
                    "run_id": run.run_id,
                    "target": target,
                    "spec_digest": spec_digest,
                },
            )
        )
    return suites


def render_junit(records: Records) -> str:
    """JUnit XML for a run's decoded records (docs/formats.md).

    One testsuite per (target, protocol) in the order results appear, its ``hostname`` the
    target and its ``timestamp`` the run's start (UTC, to the second), with properties
    ``change_id``, ``run_id``, ``target`` and ``spec_digest``. A testcase's ``time`` is its
    observation's own (``observation_ms``), absent when the records do not have it. ``fail`` becomes a failure,
    ``error`` an error, ``not-executed`` a skip with its reason, ``waived`` a pass whose
    system-out names the deviation. Planned tests without a result are errors.

    Raises:
        BadInputError: the records are not a run (no ``run.start``).
    """
    run = load_run(records)
    flat = str(to_xml_report_string(_suites(run), prettyprint=False, encoding="utf-8"))
    root = ET.fromstring(flat.encode("utf-8"))
    _fit_schema(root)
    pretty = xml.dom.minidom.parseString(ET.tostring(root, encoding="utf-8"))
    return pretty.toprettyxml(encoding="utf-8").decode("utf-8")


def _timestamp(text: str | None) -> str | None:
    """A record time as JUnit's timestamp: UTC, to the second, without a zone (the form
    strict JUnit schemas' ``ISO8601_DATETIME_PATTERN`` accepts); None if unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _seconds(element: ET.Element) -> float:
    return sum(float(case.get("time") or 0) for case in element.iter("testcase"))


def _fit_schema(root: ET.Element) -> None:
    """What ``junit-xml`` writes that the xunit schema refuses: a ``disabled`` count (no such
    attribute) and suite times as long floats (``SUREFIRE_TIME`` allows three decimals)."""
    for element in (root, *root.iter("testsuite")):
        element.attrib.pop("disabled", None)
        element.set("time", f"{_seconds(element):.3f}")
