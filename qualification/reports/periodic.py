"""The periodic review report (Annex 11 section 11) of a period, from the runs' records.

For the period [since, until): the changes and their runs with verdicts and review state,
every failed test, the deviations and their state (raised and open, or waived under an
approved deviation), the drift runs, the open items (runs not approved, failed runs without a
decision, unfinished runs, open deviations), every signature, and the audit events counted by
action. As a self-contained page (autoescaped) and as PDF (the ``pdf`` extra, as
``vqual report --pdf``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from qualification.reports.audit_review import _moment
from qualification.reports.html import _environment, _verdict, render_pdf
from qualification.reports.model import Records, Run, load_run
from qualification.reports.values import cut, show_time
from qualification.verdict import Verdict

_DECISIONS = ("approved", "rejected")


def _in(run: Run, since: datetime, until: datetime) -> bool:
    when = _moment(run.started_at or "")
    return when is not None and since <= when < until


def _state(run: Run, voided: bool) -> str:
    """The run's review state from its signatures: the last decision, else reviewed, else
    pending; void first."""
    if voided:
        return "void"
    decisions = [s for s in run.signatures if s.meaning in _DECISIONS]
    if decisions:
        return decisions[-1].meaning
    return "reviewed" if any(s.meaning == "reviewed" for s in run.signatures) else "pending"


def _deviations(runs: Sequence[Run]) -> list[dict[str, str]]:
    """Each deviation with its state: waived (an approved waiver used), raised and open."""
    out = []
    for run in runs:
        for d in run.deviations:
            if d.source == "waiver":
                continue
            state = ("waived (approved deviation)" if d.source == "waived result"
                     else "open: raised, not closed by a waiver")
            out.append({"id": "" if d.id == "?" else d.id, "change": run.change_id,
                        "run": run.run_id, "test": d.test_id or "", "target": d.target or "",
                        "detail": cut(d.detail or "", 300), "state": state})
    return out


def _open_items(runs: Sequence[Run], states: Mapping[str, str],
                deviations: Sequence[Mapping[str, str]]) -> list[str]:
    items = []
    for run in runs:
        state, name = states[run.run_id], f"{run.change_id}/{run.run_id}"
        if state == "void":
            continue
        if not run.finished:
            items.append(f"{name}: the run did not finish")
        if state in ("pending", "reviewed"):
            verdict = run.verdict()
            items.append(f"{name}: {verdict} run {state}, no approval or rejection yet")
    items += [f"{d['change']}/{d['run']}: deviation {d['id'] or 'raised'} on {d['target']} is "
              f"open" for d in deviations if d["state"].startswith("open")]
    return items


def periodic_context(
    given: Iterable[Records], *, since: datetime, until: datetime,
    audit_events: Iterable[Mapping[str, Any]] = (), voided: Iterable[str] = (),
    unreadable: Iterable[str] = (),
) -> dict[str, Any]:
    """What the report shows for runs started in [since, until).

    Args:
        given: each run's decoded records (runs outside the period are left out).
        audit_events: audit events (any source, see :mod:`.audit_review`) to count by action.
        voided: run ids the evidence server holds as void.
        unreadable: bundles that could not be read, each with why (listed as open items).
    """
    void = set(voided)
    runs = sorted((r for r in (load_run(x) for x in given) if _in(r, since, until)),
                  key=lambda r: (r.started_at or "", r.run_id))
    states = {r.run_id: _state(r, r.run_id in void) for r in runs}
    deviations = _deviations(runs)
    changes: dict[str, list[Run]] = {}
    for run in runs:
        changes.setdefault(run.change_id, []).append(run)
    events = [e for e in audit_events
              if (m := _moment(str(e.get("time") or ""))) is None or since <= m < until]
    actions = Counter(str(e.get("action") or e.get("what") or "") for e in events)
    return {
        "since": since.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "until": until.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "verdicts": Counter(r.verdict() for r in runs),
        "changes": [{"id": cid, "runs": len(rs), "last": _verdict(rs[-1].verdict()),
                     "states": ", ".join(sorted({states[r.run_id] for r in rs}))}
                    for cid, rs in sorted(changes.items())],
        "runs": [{"change": r.change_id, "run": r.run_id, "mode": str(r.start.get("mode") or ""),
                  "started": show_time(r.started_at), "verdict": _verdict(r.verdict()),
                  "counts": ", ".join(f"{k} {v}" for k, v in r.counts().items() if v),
                  "state": states[r.run_id]} for r in runs],
        "failures": [{"change": r.change_id, "run": r.run_id, "test": x.test_id,
                      "target": x.target, "verdict": _verdict(x.verdict),
                      "reason": cut(x.reason or "", 300)}
                     for r in runs for x in r.results
                     if x.recorded and x.verdict in (Verdict.FAIL, Verdict.ERROR)],
        "deviations": deviations,
        "drift": [{"change": r.change_id, "run": r.run_id, "started": show_time(r.started_at),
                   "verdict": _verdict(r.verdict())}
                  for r in runs if r.start.get("mode") == "drift"],
        "open_items": [*(f"unreadable bundle {u}" for u in unreadable),
                       *_open_items(runs, states, deviations)],
        "signatures": [{"change": r.change_id, "run": r.run_id, "meaning": s.meaning,
                        "name": s.name, "time": show_time(s.time), "roles": ", ".join(s.roles)}
                       for r in runs for s in r.signatures],
        "audit": sorted(actions.items()),
        "audit_total": len(events),
    }


def render_periodic(given: Iterable[Records], **kwargs: Any) -> str:
    """The periodic review report as a self-contained HTML page (see :func:`periodic_context`)."""
    context = periodic_context(given, **kwargs)
    return _environment().get_template("periodic.html.j2").render(**context)


def render_periodic_pdf(given: Iterable[Records], **kwargs: Any) -> bytes:
    """The periodic review report as PDF/A-3b (the ``pdf`` extra).

    Raises:
        MissingExtraError: WeasyPrint is not installed.
    """
    return render_pdf(render_periodic(given, **kwargs))


__all__ = ["periodic_context", "render_periodic", "render_periodic_pdf"]
