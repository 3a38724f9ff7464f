"""The minimal pages: login and logout, the signing dialog, and the old change list and run
page, which redirect to the one listing (the review pages, :mod:`.review_pages`).

Every route is guarded (:func:`.guard.require_user`), every POST checks CSRF, every page is
rendered through the autoescaping environment. Logins, failed logins, logouts, signatures and
every refusal go to the server's audit table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qualification.evidence.reader import read_bundle
from qualification.server.service import Refused
from qualification.server.web.accounts import attempt_login
from qualification.server.web.config import WebConfig
from qualification.server.web.guard import (
    HEADERS,
    LOGIN_CSRF_COOKIE,
    WebRefused,
    WebUser,
    audit,
    check_csrf,
    client_address,
    new_login_csrf,
    read_form,
    redirect,
    render,
    require_user,
    session_cookie,
    web_config,
)
from qualification.server.web.sessions import end_session, start_session
from qualification.server.web.signing import (
    MEANING_WEB_ROLE,
    SignRefused,
    repeat_refusal,
    sign_held_run,
    user_keyid,
)

_CSS = (Path(__file__).parent / "templates" / "web.css").read_bytes()
#: The one listing of changes and runs (the review pages); a run's page is ``RUNS/<run id>``.
RUNS = "/review/runs"


@dataclass(frozen=True)
class RunSummary:
    """What the minimal run page shows, read from the stored bundle."""

    verdict: str
    counts: dict[str, int]
    targets: list[str]
    results: list[dict[str, Any]]
    signatures: list[dict[str, Any]]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def run_summary(path: Path) -> RunSummary:
    """The verdict, counts, per-test rows and signatures of the bundle at ``path``."""
    bundle = read_bundle(path)
    end = bundle.run_end
    data = end.data if end is not None else {}
    results = [{"test_id": _text(r.data.get("test_id")), "target": _text(r.data.get("target")),
                "verdict": _text(r.data.get("verdict")), "observed": _text(r.data.get("observed")),
                "reason": _text(r.data.get("reason") or "")} for r in bundle.check_results]
    signatures = [{"name": _text(s.data.get("name")), "meaning": _text(s.data.get("meaning")),
                   "time": s.time, "comment": _text(s.data.get("comment") or ""),
                   "keyid": s.keyid[:16]} for s in bundle.signatures]
    return RunSummary(str(data.get("verdict", "incomplete")), dict(data.get("counts", {})),
                      sorted({r["target"] for r in results}), results, signatures)


class _Pages:
    """The handlers, over one configuration."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.server = config.server

    async def css(self, request: Request) -> Response:
        return Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    async def home(self, request: Request) -> Response:
        return redirect(RUNS)

    async def login_page(self, request: Request, message: str = "", status: int = 200) -> Response:
        token = new_login_csrf(request)
        nxt = request.query_params.get("next", RUNS)
        page = render(request, "login.html", status=status, message=message, next=nxt)
        page.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=self.config.settings.secure_cookies, path="/login")
        return page

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return await self.login_page(request)
        form = await read_form(request)
        check_csrf(request, form)
        user_id = form.get("user_id", "").strip().lower()[:64]
        address = client_address(request)
        outcome = await run_in_threadpool(attempt_login, self.server.engine, self.config.settings,
                                          user_id, form.get("password", ""), address)
        if not outcome.ok:
            await audit(request, "login", "refused", outcome.why, user_id=user_id or "anonymous")
            shown = ("Too many attempts: this user id or address is locked for now."
                     if outcome.throttled else "User id or password is wrong.")
            return await self.login_page(request, shown, 429 if outcome.throttled else 401)
        token = await run_in_threadpool(start_session, self.server.engine, user_id, address)
        await audit(request, "login", "ok", "session started", user_id=user_id)
        response = redirect(form.get("next", RUNS))
        response.set_cookie(session_cookie(self.config), token, httponly=True, samesite="strict",
                            secure=self.config.settings.secure_cookies, path="/")
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", httponly=True,
                               samesite="strict", secure=self.config.settings.secure_cookies)
        return response

    async def logout(self, request: Request) -> Response:
        user = await require_user(request, None)
        if isinstance(user, Response):
            return user
        check_csrf(request, await read_form(request))
        await run_in_threadpool(end_session, self.server.engine,
                                request.cookies.get(session_cookie(self.config), ""))
        await audit(request, "logout", "ok", "session ended")
        response = redirect("/login")
        response.delete_cookie(session_cookie(self.config), path="/", httponly=True,
                               samesite="strict", secure=self.config.settings.secure_cookies)
        return response

    async def changes(self, request: Request) -> Response:
        """The old change list: now the one listing, ``/review/runs`` (its filters kept)."""
        user = await require_user(request, None)
        if isinstance(user, Response):
            return user
        change = request.query_params.get("change", "")[:64]
        return redirect(f"{RUNS}?change={quote(change, safe='')}" if change else RUNS)

    async def run_page(self, request: Request) -> Response:
        """The old run page: now the run's summary with its signatures and signing links."""
        user = await require_user(request, None)
        if isinstance(user, Response):
            return user
        return redirect(f"{RUNS}/{quote(request.path_params['run_id'][:64], safe='')}")

    async def _held(self, request: Request, user: WebUser) -> tuple[dict[str, Any], RunSummary]:
        try:
            info = await run_in_threadpool(self.server.run_info, request.path_params["run_id"])
        except Refused as exc:
            raise WebRefused(404, exc.message, "read") from None
        if not user.may_see(info["sites"], self.server.settings.per_site):
            raise WebRefused(404, f"no run {info['run_id']} is held for your sites", "sign")
        path = self.server.store / info["change_id"] / info["run_id"]
        return info, await run_in_threadpool(run_summary, path)

    async def sign(self, request: Request) -> Response:
        meaning = request.query_params.get("meaning", "reviewed")
        if meaning not in MEANING_WEB_ROLE:
            raise WebRefused(422, f"unknown meaning {meaning[:40]!r}", "sign")
        user = await require_user(request, MEANING_WEB_ROLE[meaning])
        if isinstance(user, Response):
            return user
        info, summary = await self._held(request, user)
        if request.method == "GET":
            # Signed already (or decided): who signed when, and no form to repeat it.
            done = await run_in_threadpool(self._signed_already, user, info, meaning)
            return render(request, "sign.html", info=info, summary=summary, meaning=meaning,
                          message="", done=done)
        form = await read_form(request)
        check_csrf(request, form)
        return await self._sign_post(request, user, info, summary, meaning, form)

    def _signed_already(self, user: WebUser, info: dict[str, Any], meaning: str) -> str | None:
        return repeat_refusal(self.server, info, user_keyid(self.server, user.user_id), meaning)

    async def _sign_post(self, request: Request, user: WebUser, info: dict[str, Any],
                         summary: RunSummary, meaning: str, form: dict[str, str]) -> Response:
        try:
            done = await run_in_threadpool(
                sign_held_run, self.server, self.config.settings, user.user_id,
                form.get("user_id", "").strip().lower(), form.get("password", ""),
                info["run_id"], meaning, form.get("comment") or None, client_address(request))
        except SignRefused as exc:
            await audit(request, "sign", "refused", f"{meaning}: {exc.message}", info["run_id"])
            return render(request, "sign.html", status=exc.status, info=info, summary=summary,
                          meaning=meaning, message=exc.message,
                          done=exc.message if exc.status == 409 else None)
        await audit(request, "sign", "ok", f"{meaning} by {done.name} (key {done.keyid[:16]}), "
                    f"seal {done.seal}, seq {done.seq}, log {done.log_indexes}", info["run_id"])
        return redirect(f"{RUNS}/{info['run_id']}")


def routes(config: WebConfig) -> list[Route]:
    """The minimal pages' routes."""
    pages = _Pages(config)
    return [
        Route("/static/web.css", pages.css),
        Route("/", pages.home),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/changes", pages.changes),  # the old listing and run page: redirects
        Route("/runs/{run_id}", pages.run_page),
        Route("/runs/{run_id}/sign", pages.sign, methods=["GET", "POST"]),
    ]




__all__ = ["HEADERS", "RunSummary", "routes", "run_summary", "web_config"]
