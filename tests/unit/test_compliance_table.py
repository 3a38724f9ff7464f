"""Every row of docs/compliance.md names a test that exists and, in CI, passed.

To check the table against a run's results: run the suite with ``--junitxml=FILE``, then this
module with ``VQUAL_COMPLIANCE_JUNIT=FILE``; every named test must have run and passed.
"""

from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "docs" / "compliance.md"
_CELL = re.compile(r"`(tests/[^`:]+\.py)(?:::([A-Za-z_0-9]+))?`")

PART11 = [
    "11.10(a)",
    "11.10(b)",
    "11.10(c)",
    "11.10(d)",
    "11.10(e)",
    "11.10(f)",
    "11.10(g)",
    "11.10(h)",
    "11.10(i)",
    "11.10(j)",
    "11.10(k)",
    "11.50",
    "11.70",
    "11.100",
    "11.200",
    "11.300",
]
ANNEX11 = ["1", "4", "4.8", "5", "7", "8", "9", "10", "11", "12", "14", "16", "17"]


def _rows() -> list[tuple[str, str, str | None]]:
    """(clause, test file, test function or None) of each table row."""
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| Part 11") and not line.startswith("| Annex 11"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        found = _CELL.search(cells[-1])
        assert found, f"row {cells[0]} names no test"
        rows.append((cells[0], found.group(1), found.group(2)))
    return rows


ROWS = _rows()


def test_every_clause_has_a_row() -> None:
    clauses = [r[0] for r in ROWS]
    assert clauses == [f"Part 11 §{c}" for c in PART11] + [f"Annex 11 §{c}" for c in ANNEX11]


@pytest.mark.parametrize(("clause", "path", "name"), ROWS, ids=[r[0] for r in ROWS])
def test_the_named_test_exists(clause: str, path: str, name: str | None) -> None:
    source = REPO / path
    assert source.is_file(), f"{clause}: {path} does not exist"
    tests = [
        node.name
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]
    assert tests, f"{clause}: {path} has no tests"
    if name is not None:
        assert name in tests, f"{clause}: {path} has no {name}"


def compliance_problems(junit: str | Path) -> list[str]:
    """Rows of the table whose named test did not run, or did not pass, in a JUnit file."""
    outcome: dict[tuple[str, str], bool] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = (case.get("classname") or "").replace(".", "/")
        base = (case.get("name") or "").split("[", 1)[0]
        bad = any(case.find(t) is not None for t in ("failure", "error", "skipped"))
        key = (module, base)
        outcome[key] = outcome.get(key, True) and not bad
    problems = []
    for clause, path, name in ROWS:
        module = path.removesuffix(".py")
        cases = {
            k: v
            for k, v in outcome.items()
            if k[0].endswith(module) and (name is None or k[1] == name)
        }
        if not cases:
            problems.append(f"{clause}: {path}::{name} did not run")
        elif not all(cases.values()):
            problems.append(f"{clause}: {path}::{name} did not pass")
    return problems


def test_the_named_tests_passed_in_this_run() -> None:
    # `scripts/run test` also checks the table against the JUnit file of the very run it is
    # part of, at the end of the session (tests/conftest.py); this test checks a given file.
    junit = os.environ.get("VQUAL_COMPLIANCE_JUNIT")
    if not junit:
        pytest.skip("VQUAL_COMPLIANCE_JUNIT is not set (the JUnit file of the run to check)")
    assert compliance_problems(junit) == []


def test_the_check_finds_a_failed_named_test(tmp_path: Path) -> None:
    clause, path, name = ROWS[0]
    classname = path.removesuffix(".py").replace("/", ".")
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        f'<testcase classname="{classname}" name="{name or "test_x"}"><failure message="x"/></testcase>'
        "</testsuite></testsuites>"
    )
    problems = compliance_problems(junit)
    assert f"{clause}: {path}::{name} did not pass" in problems
    assert any("did not run" in p for p in problems)
