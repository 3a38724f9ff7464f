"""Does a sealed run agree with itself? (docs/formats.md, "What verify checks").

The executor signs every record, so a re-signed chain proves only which key wrote it. What a
rewrite cannot keep consistent without touching sealed files is checked here, **by meaning,
never by bytes**, so a later change of a renderer never invalidates a sealed bundle:

- ``run.end`` ``counts``, ``planned``, ``executed`` and ``verdict`` against the records;
- ``junit.xml``: each test case's name (its test id), class (``<target>.<protocol>``) and
  outcome (failure, error, skipped or passed, and the ``verdict:`` line of its system-out);
- ``report.html``: each test row's test id, target and verdict, from the row's
  ``data-test-id``/``data-target``/``data-verdict`` marks, or, in reports written before the
  marks, from the table's text (the target's heading, the Test and Verdict columns).

Each function returns problems as one line each, naming the test and both values. A JUnit
or report that lists no test at all (no test case, no test row) is not compared, with a
warning: the golden v1 fixture seals such placeholders.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from html import unescape
from html.parser import HTMLParser
from typing import Any

from qualification.verdict import VERDICTS, Verdict, overall

__all__ = ["ExpectedRow", "count_problems", "junit_problems", "report_problems"]

#: One test row as the records say it: (test id, target, protocol, verdict).
ExpectedRow = tuple[str, str, str, str]

JUNIT, REPORT = "junit.xml", "report.html"


def count_problems(
    run_end: Mapping[str, Any],
    results: Sequence[ExpectedRow],
    planned: int,
    deviations_raised: int,
    unrecorded: int = 0,
) -> list[str]:
    """What ``run.end`` says that the records do not.

    ``executed`` is the number of results, or that number without the ``not-executed`` ones
    (the rolling patch counts only what it did); ``verdict`` is the worst of the counts, and
    where a ``deviation.raised`` halted the run it may also be the halt's ``fail`` or ``error``.
    ``unrecorded`` planned tests have no result: every renderer shows them as ``error``, so
    the verdict must be at least that (the writers record them before sealing).
    """
    where = "run.end"
    problems: list[str] = []
    recount = dict.fromkeys(VERDICTS, 0)
    for row in results:
        recount[row[3]] = recount.get(row[3], 0) + 1
    counts = run_end.get("counts")
    counts = counts if isinstance(counts, Mapping) else {}
    for verdict in sorted(set(recount) | set(counts)):
        said, found = counts.get(verdict, 0), recount.get(verdict, 0)
        if said != found:
            problems.append(
                f"{where}: counts {verdict} is {said}, the records have {found} {verdict} results"
            )
    if run_end.get("planned") != planned:
        problems.append(
            f"{where}: planned is {run_end.get('planned')}, run.start plans {planned} tests"
        )
    not_run = recount.get(Verdict.NOT_EXECUTED.value, 0)
    executed = run_end.get("executed")
    if executed not in (len(results), len(results) - not_run):
        problems.append(
            f"{where}: executed is {executed}, the records have {len(results)} results "
            f"({not_run} not executed)"
        )
    shown = {**recount, Verdict.ERROR.value: recount.get(Verdict.ERROR.value, 0) + unrecorded}
    allowed = {overall(shown).value}
    if deviations_raised:
        for halt in (Verdict.FAIL.value, Verdict.ERROR.value):
            allowed.add(overall({**shown, halt: shown.get(halt, 0) + 1}).value)
    if run_end.get("verdict") not in allowed:
        missing = f" ({unrecorded} planned tests without a result)" if unrecorded else ""
        problems.append(
            f"{where}: verdict is {run_end.get('verdict')}, the records give "
            f"{' or '.join(sorted(allowed))}{missing}"
        )
    return problems


# ---------------------------------------------------------------- comparing rows


def _outcome(verdict: str) -> str:
    """The JUnit element a verdict becomes (qualification/reports/junit.py)."""
    if verdict == Verdict.FAIL:
        return "failure"
    if verdict == Verdict.NOT_EXECUTED:
        return "skipped"
    if verdict in (Verdict.PASS, Verdict.WAIVED):
        return "passed"
    return "error"  # error, and any unknown verdict


def _compare(
    name: str,
    expected: Mapping[tuple[str, str], list[str]],
    found: Mapping[tuple[str, str], list[str]],
    same: Any,
    label: str,
) -> list[str]:
    """Problems where ``found`` rows differ from ``expected`` (both in record order per key)."""
    problems: list[str] = []
    for key in sorted(set(expected) | set(found)):
        want, got = expected.get(key, []), found.get(key, [])
        test, where = key
        if len(want) != len(got):
            problems.append(
                f"{name}: test {test} on {where}: {len(got)} {label}, the records have "
                f"{len(want)} results"
            )
            continue
        for w, g in zip(want, got, strict=True):
            if not same(w, g):
                problems.append(
                    f"{name}: test {test} on {where}: says {g}, the records say {w}"
                )
                break
    return problems


def _expected(rows: Iterable[ExpectedRow], junit: bool) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for test_id, target, protocol, verdict in rows:
        where = f"{target}.{protocol or 'IQ'}" if junit else target
        out.setdefault((test_id, where), []).append(verdict)
    return out


# ---------------------------------------------------------------- junit.xml


def _case_verdict(case: ET.Element) -> tuple[str, str | None]:
    """(outcome element, verdict named in system-out or None) of one test case."""
    outcome = "passed"
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            outcome = tag
            break
    said = None
    out = case.find("system-out")
    if out is not None and out.text:
        for line in out.text.splitlines():
            if line.startswith("verdict: "):
                said = line[len("verdict: ") :].strip()
                break
    return outcome, said


Judged = tuple[list[str], list[str]]  # (problems, warnings)


def _silent(name: str, rows: Sequence[ExpectedRow], strict: bool = False) -> Judged:
    if strict:  # format v2: a placeholder is no record of the run
        return [f"{name}: lists no test; the records have {len(rows)} results"], []
    return [], [f"{name}: lists no test; the records have {len(rows)} results (not compared)"]


#: Attributes of a test case's start tag, found by name, in any order.
_NAME = re.compile(r"""\bname\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_CLASS = re.compile(r"""\bclassname\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_Case = tuple[str, str, str, str | None]


def _said(body: str) -> str | None:
    """The verdict a system-out's ``verdict:`` line names (at a line start), or None."""
    at = body.find("verdict: ")
    while at > 0 and body[at - 1] not in "\n>":
        at = body.find("verdict: ", at + 1)
    if at < 0:
        return None
    end = min(x for x in (body.find("\n", at), body.find("<", at), len(body)) if x >= 0)
    return body[at + 9 : end].strip()


def _scan_cases(text: str) -> list[_Case] | None:
    """(name, class, outcome, verdict said) of each test case by a scan of the text, or None
    where the text is not in the plain form the scan reads exactly (CDATA, comments): then
    the XML parser reads it. The scan is several times faster on big runs (the bench)."""
    if "<![CDATA[" in text or "<!--" in text:
        return None
    out: list[_Case] = []
    find, at = text.find, text.find("<testcase")
    while at >= 0:
        head_end = find(">", at)
        if head_end < 0:
            return None
        head = text[at + 9 : head_end]
        if head[:1] not in (" ", "\t", "\n", "\r", "/", ""):
            return None  # <testcaseX: not a test case; the parser decides
        if head.endswith("/"):
            body, nxt = "", head_end + 1
        else:
            close = find("</testcase>", head_end)
            if close < 0:
                return None
            body, nxt = text[head_end + 1 : close], close + 11
        name, cls = _NAME.search(head), _CLASS.search(head)
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if f"<{tag}" in body:
                outcome = tag
                break
        out.append(
            (
                unescape((name[1] or name[2]) if name else ""),
                unescape((cls[1] or cls[2]) if cls else ""),
                outcome,
                _said(body),
            )
        )
        at = find("<testcase", nxt)
    return out


def _parse_cases(data: bytes) -> list[_Case]:
    """The same as :func:`_scan_cases`, by the XML parser.

    Raises:
        ET.ParseError: not well-formed XML.
    """
    root = ET.fromstring(data)
    return [
        (case.get("name") or "", case.get("classname") or "", *_case_verdict(case))
        for case in root.iter("testcase")
    ]


def junit_problems(data: bytes, rows: Sequence[ExpectedRow], *, strict: bool = False) -> Judged:
    """Where ``junit.xml`` says other than the records' rows (test id, class, outcome);
    ``strict`` as for :func:`report_problems`."""
    try:
        text = data.decode("utf-8")
        cases = _scan_cases(text) if text.lstrip().startswith("<?xml") else None
        if cases is None:
            cases = _parse_cases(data)
    except (UnicodeDecodeError, ET.ParseError) as exc:
        return [f"{JUNIT}: is not XML ({exc})"], []
    if rows and not cases:
        return _silent(JUNIT, rows, strict)
    found: dict[tuple[str, str], list[str]] = {}
    for name, classname, outcome, said in cases:
        test_id = name.split(" ", 1)[0]
        if said is not None and _outcome(said) != outcome:
            problem = f"{JUNIT}: test {test_id} on {classname}: {outcome}, but system-out says {said}"
            return [problem], []
        found.setdefault((test_id, classname), []).append(said if said is not None else outcome)

    def same(want: str, got: str) -> bool:
        # A case without a verdict line is judged by its outcome element alone.
        return want == got or (got not in VERDICTS and _outcome(want) == got)

    return _compare(JUNIT, _expected(rows, junit=True), found, same, "test cases"), []


# ---------------------------------------------------------------- report.html


#: A marked row's start tag, and its attributes. The renderer escapes ``>`` in values, so a
#: scan of start tags is exact for its output and much faster than a full parse (the bench).
_MARKED_TR = re.compile(r"<tr\s([^>]*\bdata-test-id\s*=[^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


#: The marks as the renderer writes them, in its order: one C-level match per row.
_MARKS = re.compile(r'<tr data-test-id="([^"]*)" data-target="([^"]*)" data-verdict="([^"]*)">')


def _marked_rows(html: str) -> list[tuple[str, str, str]]:
    fast = [(unescape(a), unescape(b), unescape(c)) for a, b, c in _MARKS.findall(html)]
    if len(fast) == html.count("data-test-id"):
        return fast
    rows = []
    for tag in _MARKED_TR.finditer(html):
        attrs = {m[1].lower(): unescape(m[2] or m[3] or m[4] or "") for m in _ATTR.finditer(tag[1])}
        rows.append(
            (attrs.get("data-test-id", ""), attrs.get("data-target", ""),
             attrs.get("data-verdict", ""))
        )
    return rows


class _ReportRows(HTMLParser):
    """The test rows of a report written before rows were marked: the text of its tests
    tables (the target's heading, the Test and Verdict columns)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text_rows: list[tuple[str, str, str]] = []
        self._heading: list[str] | None = None
        self._target = ""
        self._in_tests = False
        self._cells: list[str] | None = None
        self._cell: list[str] | None = None
        self._verdict: list[str] | None = None
        self._verdict_text: str | None = None
        self.tables = 0  # tests tables seen

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "h3":
            self._heading = []
        elif tag == "table":
            self._in_tests = "tests" in (a.get("class") or "").split()
            self.tables += self._in_tests
        elif tag == "tr":
            self._cells, self._verdict_text = ([] if self._in_tests else None), None
        elif tag == "td" and self._cells is not None:
            self._cell = []
        elif tag == "span" and self._cell is not None and "verdict" in (a.get("class") or ""):
            self._verdict = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self._heading is not None:
            self._target = "".join(self._heading).split(" (", 1)[0].strip()
            self._heading = None
        elif tag == "table":
            self._in_tests = False
        elif tag == "span" and self._verdict is not None:
            self._verdict_text = "".join(self._verdict).strip()
            self._verdict = None
        elif tag == "td" and self._cell is not None and self._cells is not None:
            self._cells.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._cells is not None:
            if len(self._cells) == 8 and self._verdict_text is not None:
                # "NOT EXECUTED", "WAIVED (DEV-1)": the verdict's on-disk spelling
                word = self._verdict_text.split(" (", 1)[0]
                self.text_rows.append(
                    (self._cells[0], self._target, word.lower().replace(" ", "-"))
                )
            self._cells = None

    def handle_data(self, data: str) -> None:
        for part in (self._heading, self._cell, self._verdict):
            if part is not None:
                part.append(data)


def report_problems(data: bytes, rows: Sequence[ExpectedRow], *, strict: bool = False) -> Judged:
    """Where ``report.html``'s test rows say other than the records' rows (``strict``,
    format v2: a report that lists no test is a problem, not a warning)."""
    try:
        html = data.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{REPORT}: is not UTF-8 text"], []
    # Marked rows where the renderer marks them; a report written before, by its table text.
    read = _marked_rows(html)
    if not read:
        parser = _ReportRows()
        parser.feed(html)
        parser.close()
        read = parser.text_rows
        if rows and not read and not parser.tables:
            return _silent(REPORT, rows, strict)
    found: dict[tuple[str, str], list[str]] = {}
    for test_id, target, verdict in read:
        found.setdefault((test_id, target), []).append(verdict)
    return _compare(REPORT, _expected(rows, junit=False), found, str.__eq__, "rows"), []
