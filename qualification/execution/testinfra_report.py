"""A pytest plugin that writes each test's outcome as one JSON line (``--vqual-report``).

Loaded with ``-p`` into the pytest process that
:func:`qualification.execution.testinfra.run_testinfra` starts; it imports only pytest, so
whatever the suite imports (testinfra, and through its ansible backend ansible) stays in that
process. A line: ``{nodeid, path, name, outcome, message, seconds, urs}``; ``outcome`` is
``passed``, ``failed`` (an assertion failed), ``error`` (anything else raised, in the test or
its fixtures) or ``skipped`` (also an expected failure); ``message`` the assertion or
exception message, or the skip reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from typing import IO, Any

import pytest

_PARAMS = re.compile(r"\[.*\]$")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--vqual-report", dest="vqual_report", default=None,
                     help="write each test's outcome as a JSON line to this file")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "urs(*ids): the URS requirement ids a test verifies")
    path = config.getoption("vqual_report")
    if path:
        # Open for the whole session; pytest_unconfigure closes it.
        out = open(path, "a", encoding="utf-8")  # noqa: SIM115
        config.pluginmanager.register(_Reporter(out), "vqual_report")


def _name(item: pytest.Item) -> str:
    """``test_x`` or ``TestA::test_x``: the node id without its file and parameters."""
    parts = item.nodeid.split("::")[1:]
    return "::".join([*parts[:-1], _PARAMS.sub("", parts[-1])]) if parts else item.name


def _skip_reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return f"expected to fail: {report.wasxfail or 'no reason given'}"
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


class _Reporter:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._tests: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        entry = self._tests.setdefault(item.nodeid, {
            "nodeid": item.nodeid, "path": str(item.path), "name": _name(item),
            "outcome": "passed", "message": None,
            "seconds": 0.0,
            "urs": [str(i) for m in item.iter_markers("urs") for i in m.args],
        })
        entry["seconds"] += report.duration
        if entry["outcome"] != "passed":
            return  # the first thing that went wrong decides
        if report.skipped:
            entry.update(outcome="skipped", message=_skip_reason(report))
        elif report.failed:
            excinfo = call.excinfo
            assertion = (
                report.when == "call" and excinfo is not None
                and excinfo.errisinstance(AssertionError)
            )
            message = excinfo.exconly() if excinfo is not None else report.longreprtext
            entry.update(outcome="failed" if assertion else "error", message=message)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        entry = self._tests.pop(nodeid, None)
        if entry is not None:
            entry["seconds"] = round(entry["seconds"], 6)
            self._out.write(json.dumps(entry) + "\n")
            self._out.flush()

    def pytest_unconfigure(self) -> None:
        self._out.close()
