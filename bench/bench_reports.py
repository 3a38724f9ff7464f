"""Rendering cost of JUnit, HTML and PDF for a large run, against a floor in the same run.

The floor is serialising the same decoded records to JSON (``json.dumps``, sorted keys):
the least any rendering of them must do. Ratios are render time / floor time.

Run: ``.venv/bin/python bench/bench_reports.py [--results 2000] [--repeat 3] [--pdf]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qualification.reports.html import render_pdf, render_report
from qualification.reports.junit import render_junit
from qualification.reports.matrix import traceability
from tests.unit.reports.reports_testlib import RunRecords

VERDICTS = ("pass", "pass", "pass", "fail", "error", "not-executed", "waived")


def _records(n: int) -> tuple[list[dict[str, Any]], list[str]]:
    hosts = [f"kvm{i:02d}" for i in range(max(1, n // 100))]
    per_host = max(1, n // len(hosts))
    urs = [f"URS-{i:03d}" for i in range(60)]
    planned = [
        {"test_id": f"IQ-{t:03d}", "target": h, "protocol": "IQ"}
        for h in hosts
        for t in range(per_host)
    ]
    run = RunRecords()
    run.start(
        [{"name": h, "kinds": ["host"], "risk": "high", "risk_reason": "LIMS"} for h in hosts],
        planned,
        urs,
    )
    for index, item in enumerate(planned):
        verdict = VERDICTS[index % len(VERDICTS)]
        run.result(
            item["test_id"],
            item["target"],
            verdict,
            {"value": f"observed {index}", "lines": [f"line {k}" for k in range(5)]},
            title=f"check number {index % per_host}",
            requirements=(urs[index % len(urs)],),
            reason=None if verdict == "pass" else f"reason {index}",
            deviation="DEV-1" if verdict == "waived" else None,
        )
    run.end()
    return run.records, urs


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pdf", action="store_true", help="also time the PDF rendering")
    args = parser.parse_args()
    records, urs = _records(args.results)
    render_report(records[:2])  # compile the template once, outside the timing
    floor = _best(lambda: json.dumps(records, sort_keys=True), args.repeat)
    rows = [
        ("json.dumps (floor)", floor),
        ("traceability", _best(lambda: traceability(records, urs), args.repeat)),
        ("render_junit", _best(lambda: render_junit(records), args.repeat)),
        ("render_report", _best(lambda: render_report(records), args.repeat)),
    ]
    if args.pdf:
        html = render_report(records)
        rows.append(("render_pdf", _best(lambda: render_pdf(html), 1)))
    print(f"{len(records) - 2} results, best of {args.repeat}")
    for name, seconds in rows:
        print(f"{name:20s} {seconds * 1000:10.1f} ms  {seconds / floor:8.1f}x floor")


if __name__ == "__main__":
    main()
