"""The run summary QA reads in the browser (docs/server.md, "Review in the browser").

What a reviewer needs first comes first, so that it fits the first 1280x800 of the page: the
verdict, the counts, each failed test with its reason and its expected and observed values,
what is waived and what is missing; then the per-test table, the traceability matrix with the
requirement texts, the deviations, the actions and the signatures. A rolling patch adds its
timeline (:mod:`qualification.reports.timeline`), a clone run the master's fingerprint
against each clone's.

Rendered with Jinja2 autoescaping from the decoded records: everything a target reported
(observed values, hostnames, file contents) is text, never markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from qualification.evidence.kinds import FINGERPRINT
from qualification.evidence.kinds.base import data_of
from qualification.reports.html import (
    _LABELS,
    _actions,
    _declared,
    _deviations,
    _environment,
    _matrix,
    _signatures,
    _summary,
    _targets,
    _verdict,
)
from qualification.reports.model import Records, Result, Run, load_run
from qualification.reports.timeline import render_timeline
from qualification.reports.values import cut, show, show_expected
from qualification.verdict import Verdict

#: How much of a value the first screen shows; the table below shows more, the record all.
_SHORT = 160
#: Items per first-screen list; the rest are named by count and are in the table below.
FIRST_SCREEN_ITEMS = 5


def _failure(result: Result) -> dict[str, str]:
    return {
        "id": result.test_id,
        "title": cut(result.title, 80),
        "target": result.target,
        "verdict": _verdict(result.verdict)["text"],
        "css": _verdict(result.verdict)["css"],
        "reason": cut(result.reason or "(no reason recorded)", _SHORT),
        "expected": "" if result.expected is None else show_expected(result.expected, _SHORT),
        "observed": show(result.observed, _SHORT),
    }


def first_screen(run: Run) -> dict[str, Any]:
    """What the first screen shows: verdict, counts, failures, waived, missing, halts."""
    recorded = [r for r in run.results if r.recorded]
    failed = [r for r in recorded if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    waived = [
        {"id": r.test_id, "target": r.target, "deviation": r.deviation or "deviation id missing",
         "reason": cut(r.reason or "", _SHORT)}
        for r in recorded if r.verdict == Verdict.WAIVED
    ]
    # Planned without a result, then recorded as not executed: either way no evidence.
    missing = [
        {"id": r.test_id, "target": r.target, "reason": cut(r.reason or "", _SHORT)}
        for r in [*run.missing(), *(r for r in recorded if r.verdict == Verdict.NOT_EXECUTED)]
    ]
    counts = run.counts()
    return {
        "verdict": _verdict(run.verdict()),
        "counts": [(_LABELS.get(v, v.upper()), n, _verdict(v)["css"]) for v, n in counts.items()],
        "planned": len(run.start.get("planned") or ()),
        "missing_count": len(run.missing()),
        "failures": [_failure(r) for r in failed],
        "waived": waived,
        "missing": missing,
        "halts": [
            {"id": "" if d.id == "?" else d.id, "target": d.target or "",
             "detail": cut(d.detail or "", _SHORT)}
            for d in run.deviations if d.source == "raised"
        ],
        "limit": FIRST_SCREEN_ITEMS,
    }


def clone_comparison(run: Run, records: Records) -> dict[str, Any] | None:
    """A clone run's master fingerprint against each clone's (docs/clones.md); else None."""
    clone = run.start.get("clone")
    if not isinstance(clone, Mapping):
        return None
    master = clone.get("master_fingerprint")
    master = master if isinstance(master, Mapping) else {}
    master_digest = str(master.get("digest") or "")
    checks = {
        r.target: r for r in run.results if r.check == "clone_fingerprint" and r.recorded
    }
    clones = []
    for record in records:
        kind = record.get("kind") if isinstance(record, Mapping) else record.kind
        if kind != FINGERPRINT:
            continue
        fp = data_of(record) if isinstance(record, Mapping) else record.data
        subject = str(fp.get("subject") or "")
        check = checks.get(subject)
        clones.append({
            "subject": subject,
            "digest": str(fp.get("digest") or ""),
            "verdict": _verdict(check.verdict) if check else None,
            "differences": show(check.observed, 600) if check else "",
        })
    for target, check in checks.items():  # a compared clone whose own fingerprint is absent
        if target not in {c["subject"] for c in clones}:
            clones.append({"subject": target, "digest": "",
                           "verdict": _verdict(check.verdict),
                           "differences": show(check.observed, 600)})
    return {
        "master": f"{clone.get('master_change_id')}/{clone.get('master_run_id')}",
        "master_seal": str(clone.get("master_seal") or ""),
        "subject": str(master.get("subject") or ""),
        "digest": master_digest,
        "clones": clones,
    }


def _targets_with_missing(run: Run) -> list[dict[str, Any]]:
    """The per-test table, where a planned test without a result says MISSING, as the
    first screen's count does (the sealed report keeps its ERROR: no result is an error)."""
    missing = {(r.test_id, r.target) for r in run.missing()}
    targets = _targets(run)
    for target in targets:
        for row in target["tests"]:
            if (row["id"], row["target"]) in missing:
                row["verdict"] = {"text": "MISSING", "css": "v-error"}
    return targets


def summary_context(
    records: Records, *, statuses: Sequence[tuple[str, str]] = (),
    spec_requirements: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the summary templates need, from a run's decoded records.

    Args:
        records: the run's decoded records, ``run.start`` first.
        statuses: (what, status) pairs the page adds to the facts (the server's verification,
            chain and log status); shown as text.
        spec_requirements: URS id -> text; else ``run.start``'s requirements (the matrix
            takes texts from its ``traceability`` too).
    """
    run = load_run(records)
    declared, texts = _declared(run.start, spec_requirements)
    timeline = render_timeline(records) if run.start.get("mode") == "patch" else None
    return {
        "run": _summary(run),
        "first": first_screen(run),
        "targets": _targets_with_missing(run),
        "matrix": _matrix(run, declared, texts),
        "deviations": _deviations(run),
        "actions": _actions(run),
        "signatures": _signatures(run, run.seal),
        "clone": clone_comparison(run, records),
        "timeline": timeline,
        "statuses": [(str(a), str(b)) for a, b in statuses],
    }



def render_summary_fragment(records: Records, **kwargs: Any) -> Markup:
    """The summary as an HTML fragment (no ``<html>``), for a page that embeds it."""
    template = _environment().get_template("summary.html.j2")
    return Markup(template.render(**summary_context(records, **kwargs)))


def render_summary(records: Records, **kwargs: Any) -> str:
    """The summary as a self-contained HTML page (inline CSS, no scripts)."""
    template = _environment().get_template("summary_page.html.j2")
    run = load_run(records)
    return template.render(
        title=f"Run {run.run_id} of {run.change_id}",
        body=render_summary_fragment(records, **kwargs),
        css=summary_css(),
    )


def summary_css() -> Markup:
    """The summary's stylesheet (inline in a page; a server page includes it once)."""
    return Markup(_environment().loader.get_source(  # type: ignore[union-attr]
        _environment(), "summary.css")[0])


__all__ = [
    "FIRST_SCREEN_ITEMS",
    "clone_comparison",
    "first_screen",
    "render_summary",
    "render_summary_fragment",
    "summary_context",
    "summary_css",
]
