"""The review pages (docs/server.md, "Review in the browser"): changes and runs with their
statuses, a run's summary, a rolling patch's timeline, the audit-trail review with export,
the periodic review as a page and as PDF.

Readers are reviewers and approvers (:func:`_reader`); every page goes through
:func:`.guard.require_user` and is rendered by :func:`.guard.render` (autoescaped). The run
summary, timeline and periodic review are the renderers of :mod:`qualification.reports`,
which escape everything a target reported; they are embedded as the fragments they render.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from qualification.errors import BadInputError, MissingExtraError, VqualError
from qualification.reports import audit_review as ar
from qualification.reports.periodic import render_periodic, render_periodic_pdf
from qualification.reports.summary import render_summary_fragment
from qualification.reports.timeline import render_timeline
from qualification.server.web.config import WebConfig
from qualification.server.web.guard import (
    HEADERS,
    WebRefused,
    WebUser,
    audit,
    render,
    require_user,
    web_config,
)
from qualification.server.web.review_data import (
    HeldRun,
    RunFilter,
    cached_render,
    held_run,
    held_runs,
    records_of,
    visible_run_ids,
)
from qualification.server.web.signing import DECISION, user_keyid
from qualification.verdict import VERDICTS

#: Who may read the review pages.
READERS = ("reviewer", "approver")
_TEMPLATES = Path(__file__).parent / "templates"
_CSS = ((_TEMPLATES / "review" / "review.css").read_bytes()
        + (Path(__file__).parents[2] / "reports" / "templates" / "summary.css").read_bytes())
#: The sealed report's policy: its inline styles and nothing else.
SEALED_REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                     "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
#: Audit rows read from the server's table for one review page.
AUDIT_ROWS = 20000


async def _reader(request: Request) -> WebUser | Response:
    """A signed-in reviewer or approver, or the response to return (audited refusal)."""
    user = await require_user(request, None)
    if isinstance(user, Response) or any(user.has(r) for r in READERS):
        return user
    await audit(request, "authorize", "refused",
                f"{user.user_id} is neither reviewer nor approver: {request.url.path[:200]}")
    return render(request, "error.html", status=403,
                  message=f"{user.printed_name} holds neither the reviewer nor the approver role.")


def _refuse_bad(exc: BadInputError) -> WebRefused:
    return WebRefused(422, exc.one_line(), "read")


def _rendered(config: WebConfig, run: HeldRun, what: str, renderer: Any) -> Any:
    try:
        return cached_render(config.server, run, what, renderer)
    except VqualError as exc:
        raise WebRefused(409, f"the stored bundle cannot be read: {exc.one_line()}",
                         "read") from None


def _run_or_404(config: WebConfig, run_id: str, user: WebUser) -> HeldRun:
    """The held run ``run_id`` if ``user`` may see it; else 404 (audited), the same answer
    as for a run not held, so another site's runs are not disclosed."""
    run = held_run(config.server, run_id)
    if run is None:
        raise WebRefused(404, f"no run {run_id[:64]} is held", "read")
    if not user.may_see(run.sites, config.server.settings.per_site):
        raise WebRefused(404, f"no run {run_id[:64]} is held for your sites", "read")
    return run


def _visible(config: WebConfig, user: WebUser) -> Callable[[frozenset[str]], bool]:
    per_site = config.server.settings.per_site
    return lambda sites: user.may_see(sites, per_site)


def _audit_rows(config: WebConfig, user: WebUser) -> list[dict[str, Any]]:
    """The audit rows ``user`` may read: all for a user of every site; else the rows of the
    runs of their sites and their own."""
    rows = config.server.audit_rows(AUDIT_ROWS)
    if user.of_every_site or not config.server.settings.per_site:
        return rows
    runs = visible_run_ids(config.server, _visible(config, user))
    return [r for r in rows if r.get("run_id") in runs or r.get("who") == user.user_id]


def _sign_links(config: WebConfig, run: HeldRun, user: WebUser) -> list[tuple[str, str]]:
    """The signing links ``user`` gets on ``run``: none once it is void or approved; not a
    meaning the user's key has signed it with (approved and rejected are one decision)."""
    if run.voided:
        return []
    signed = run.facts.signers
    if any(meaning == "approved" for meaning, _ in signed):
        return []
    keyid = user_keyid(config.server, user.user_id)
    mine = {DECISION.get(m, m) for m, k in signed if k == keyid}
    links = [("reviewed", "Sign as reviewed")] if user.has("reviewer") else []
    if user.has("approver"):
        links += [("approved", "Approve"), ("rejected", "Reject")]
    return [(m, label) for m, label in links if DECISION.get(m, m) not in mine]


def _statuses(run: HeldRun) -> list[tuple[str, str]]:
    return [("verification", run.verification), ("chain", run.facts.chain), ("log", run.log),
            ("approvals", run.approvals)]


def _period(request: Request) -> tuple[datetime, datetime]:
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    query = request.query_params
    try:
        since = ar.parse_moment(query["from"], "from") if query.get("from") else (
            now - timedelta(days=90))
        until = ar.parse_moment(query["to"], "to") if query.get("to") else now + timedelta(days=1)
    except BadInputError as exc:
        raise _refuse_bad(exc) from None
    if until <= since:
        raise WebRefused(422, "the period's end must be after its start", "read")
    return since, until


def _periodic_inputs(config: WebConfig, user: WebUser, since: datetime,
                     until: datetime) -> dict[str, Any]:
    runs = held_runs(config.server, RunFilter(since=since, until=until), limit=100000,
                     visible=_visible(config, user))
    return {"given": [records_of(config.server, r) for r in runs], "since": since,
            "until": until, "voided": [r.run_id for r in runs if r.voided],
            "audit_events": _audit_rows(config, user)}


async def _css(request: Request) -> Response:
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=300"})


async def runs_page(request: Request) -> Response:
    config = web_config(request)
    user = await _reader(request)
    if isinstance(user, Response):
        return user
    try:
        flt = RunFilter.from_query(request.query_params)
    except BadInputError as exc:
        raise _refuse_bad(exc) from None
    runs = await run_in_threadpool(held_runs, config.server, flt, 200, _visible(config, user))
    changes: dict[str, int] = {}
    for run in runs:
        changes[run.change_id] = changes.get(run.change_id, 0) + 1
    return render(request, "review/runs.html", runs=runs, changes=changes,
                  query=dict(request.query_params), verdicts=VERDICTS)


async def summary_page(request: Request) -> Response:
    config = web_config(request)
    user = await _reader(request)
    if isinstance(user, Response):
        return user
    run = await run_in_threadpool(_run_or_404, config, request.path_params["run_id"], user)
    fragment = await run_in_threadpool(_rendered, config, run, "summary",
                                       render_summary_fragment)
    links = await run_in_threadpool(_sign_links, config, run, user)
    return render(request, "review/summary.html", run=run, statuses=_statuses(run),
                  fragment=fragment, links=links)


async def timeline_page(request: Request) -> Response:
    config = web_config(request)
    user = await _reader(request)
    if isinstance(user, Response):
        return user
    run = await run_in_threadpool(_run_or_404, config, request.path_params["run_id"], user)
    svg = await run_in_threadpool(_rendered, config, run, "timeline", render_timeline)
    return render(request, "review/timeline.html", run=run, svg=svg,
                  statuses=_statuses(run))


async def audit_page(request: Request) -> Response:
    config = web_config(request)
    user = await _reader(request)
    if isinstance(user, Response):
        return user
    try:
        flt = ar.AuditFilter.from_query(request.query_params)
        fmt = request.query_params.get("export", "")
        if fmt and fmt not in ar.EXPORTS:
            raise BadInputError(f"export format {fmt[:20]!r} is not one of csv, json")
    except BadInputError as exc:
        raise _refuse_bad(exc) from None
    rows = ar.review(await run_in_threadpool(_audit_rows, config, user), flt)
    if fmt:
        await audit(request, "audit.export", "ok", f"{fmt}, {len(rows)} events")
        media = "text/csv" if fmt == "csv" else "application/json"
        return Response(ar.export(rows, fmt, flt), media_type=media, headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="audit.{fmt}"'})
    return render(request, "review/audit.html", table=ar.render_audit_fragment(rows, flt),
                  query=dict(request.query_params))


async def periodic_page(request: Request) -> Response:
    config = web_config(request)
    user = await _reader(request)
    if isinstance(user, Response):
        return user
    since, until = _period(request)
    inputs = await run_in_threadpool(_periodic_inputs, config, user, since, until)
    if request.url.path.endswith(".pdf"):
        try:
            pdf = await run_in_threadpool(lambda: render_periodic_pdf(**inputs))
        except MissingExtraError as exc:
            raise WebRefused(501, exc.one_line(), "read") from None
        await audit(request, "periodic.pdf", "ok", f"{since:%Y-%m-%d} to {until:%Y-%m-%d}")
        return Response(pdf, media_type="application/pdf", headers={
            **HEADERS, "Content-Disposition": 'attachment; filename="periodic-review.pdf"'})
    html = await run_in_threadpool(lambda: render_periodic(**inputs))
    # The report is a whole document; the page shows its body inside the site's frame.
    body = html.split("<body>", 1)[1].rsplit("</body>", 1)[0]
    return render(request, "review/periodic.html", body=_markup(body),
                  since=f"{since:%Y-%m-%d}", until=f"{until:%Y-%m-%d}")


async def sealed_report(request: Request) -> Response:
    """The ``report.html`` sealed in the bundle, as it was sealed (a static file); its own
    inline styles are allowed and nothing else (no script, no request elsewhere)."""
    config = web_config(request)
    user = await _reader(request)
    if isinstance(user, Response):
        return user
    run = await run_in_threadpool(_run_or_404, config, request.path_params["run_id"], user)
    path = config.server.store / run.change_id / run.run_id / "report.html"
    if not path.is_file():
        raise WebRefused(404, f"run {run.run_id} has no sealed report.html", "read")
    return FileResponse(path, media_type="text/html", headers={
        **HEADERS, "Content-Security-Policy": SEALED_REPORT_CSP})


def routes(config: WebConfig) -> list[Route]:
    """The review routes (the guard reads ``config`` from the app's state)."""
    return [
        Route("/static/review.css", _css),
        Route("/review/runs", runs_page),
        Route("/review/runs/{run_id}", summary_page),
        Route("/review/runs/{run_id}/timeline", timeline_page),
        Route("/review/runs/{run_id}/report.html", sealed_report),
        Route("/review/audit", audit_page),
        Route("/review/periodic", periodic_page),
        Route("/review/periodic.pdf", periodic_page),
    ]


def _markup(html: str) -> Any:
    from markupsafe import Markup

    return Markup(html)  # rendered by the autoescaping report environment


__all__ = ["READERS", "routes"]
