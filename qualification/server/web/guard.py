"""What every browser page goes through: the session, the role, CSRF, and rendering.

A page handler starts with ``user = await require_user(request, "reviewer")`` and returns
``user`` at once when it is a :class:`Response` (a redirect to the login page, or 403); every
POST handler reads its form with :func:`read_form` and calls :func:`check_csrf` before it
acts; pages are rendered with :func:`render`, whose Jinja2 environment escapes everything
(``autoescape`` on for every template), so what a target reported (observed values,
hostnames, file contents) is shown as text. Never mark record data ``|safe``.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from qualification.server.web.sessions import Session, lookup

if TYPE_CHECKING:
    from qualification.server.web.config import WebConfig

#: Security headers on every page: no framing, no inline or foreign script, no caching.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
CSRF_FIELD = "csrf_token"
LOGIN_CSRF_COOKIE = "vq_login_csrf"
MAX_FORM = 64 * 1024
_TEMPLATES = Path(__file__).parent / "templates"
_ENV = Environment(loader=FileSystemLoader(str(_TEMPLATES)),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class WebUser:
    """The person behind a request (from the session)."""

    user_id: str
    printed_name: str
    roles: tuple[str, ...]
    #: Sites the user may see; empty means every site.
    sites: tuple[str, ...] = ()

    def has(self, role: str) -> bool:
        """Whether the user holds ``role`` (an admin is not thereby a reviewer or approver:
        signing roles are never implied)."""
        return role in self.roles

    def may_see_site(self, site: str | None) -> bool:
        """The per-site seam: a run without a site, or a user of every site, is visible."""
        return site is None or self.of_every_site or site in self.sites

    @property
    def of_every_site(self) -> bool:
        """Whether the user sees every site: no sites given, or ``*``."""
        return not self.sites or "*" in self.sites

    def may_see(self, sites: Collection[str], per_site: bool) -> bool:
        """Whether a run (or deviation) of ``sites`` is shown to and may be acted on by this
        user: as the API holds a token to its sites (``site_refusal``), when the server
        configures sites; a user of every site sees everything."""
        return not per_site or self.of_every_site or bool(set(self.sites) & set(sites))


class WebRefused(Exception):
    """A refused browser request; the app renders it with ``status`` and audits it."""

    def __init__(self, status: int, message: str, action: str = "web") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.action = action


def web_config(request: Request) -> WebConfig:
    config: WebConfig = request.app.state.web
    return config


def session_cookie(config: WebConfig) -> str:
    # The __Host- prefix makes the browser refuse the cookie unless Secure, host-only, path /.
    return "__Host-vq_session" if config.settings.secure_cookies else "vq_session"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def who(request: Request) -> str:
    """The user id for the audit table (``anonymous`` before login)."""
    user = getattr(request.state, "user", None)
    return user.user_id if isinstance(user, WebUser) else "anonymous"


async def audit(request: Request, action: str, outcome: str, detail: str,
                run_id: str | None = None, user_id: str | None = None) -> None:
    """One row of the server's audit table, for a browser request."""
    config = web_config(request)
    await run_in_threadpool(config.server.audit, user_id or who(request), action, outcome,
                            f"{detail} [{client_address(request)}]", run_id)


async def require_user(request: Request, role: str | None) -> WebUser | Response:
    """The signed-in user holding ``role`` (any user when None), or the response to return:
    a redirect to the login page (no or ended session; a presented but dead session cookie
    is audited), or 403 (role missing; audited)."""
    config = web_config(request)
    token = request.cookies.get(session_cookie(config), "")
    session, why = (await run_in_threadpool(lookup, config.server.engine, token, config.settings)
                    if token else (None, "no session"))
    if session is None:
        if token:
            await audit(request, "session", "refused", f"{why}: {request.url.path[:200]}")
        target = quote(request.url.path if request.method == "GET" else "/review/runs", safe="/")
        return RedirectResponse(f"/login?next={target}", status_code=303, headers=HEADERS)
    user = WebUser(session.user_id, session.printed_name, session.roles, session.sites)
    request.state.user = user
    request.state.session = session
    if role is not None and not user.has(role):
        await audit(request, "authorize", "refused",
                    f"{user.user_id} lacks role {role}: {request.method} {request.url.path[:200]}")
        return render(request, "error.html", status=403,
                      message=f"{user.printed_name} does not hold the role {role} this needs.")
    return user


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (first value of each name).

    Raises:
        WebRefused: another content type, or a body over 64 KiB.
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != \
            "application/x-www-form-urlencoded":
        raise WebRefused(415, "forms are sent url-encoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise WebRefused(413, "form over 64 KiB")
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, value)
    return form


def _session(request: Request) -> Session | None:
    session = getattr(request.state, "session", None)
    return session if isinstance(session, Session) else None


def csrf_field(request: Request) -> str:
    """The hidden form field carrying the session's CSRF token (login: the login cookie's)."""
    session = _session(request)
    token = session.csrf if session else getattr(request.state, "login_csrf", "")
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)


def check_csrf(request: Request, form: dict[str, str]) -> None:
    """Refuse a POST whose form lacks the session's CSRF token (before login: the token of
    the login cookie, double submit).

    Raises:
        WebRefused: 403, audited by the app's handler.
    """
    session = _session(request)
    expected = session.csrf if session else request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise WebRefused(403, f"CSRF token missing or wrong: {request.url.path[:200]}", "csrf")


def new_login_csrf(request: Request) -> str:
    token = secrets.token_urlsafe(32)
    request.state.login_csrf = token
    return token


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` (under ``templates/``, extending ``base.html``) as an HTML response with
    the security headers; ``user``, ``csrf_field()`` and ``request`` are in its context."""
    page = _ENV.get_template(template).render(
        request=request, user=getattr(request.state, "user", None),
        csrf_field=lambda: csrf_field(request), **context)
    return HTMLResponse(page, status_code=status, headers=HEADERS)


#: A path of this site: one leading ``/`` and no backslash, which browsers read as ``/``
#: (``/\\evil.example`` would leave the site).
_LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9/_.~%?=&+:@-]*$")


def redirect(url: str) -> RedirectResponse:
    """A 303 to a path of this site; anything else (another site, a ``//`` or ``/\\``
    address) goes to the change list instead."""
    safe = url if _LOCAL_PATH.match(url) else "/review/runs"
    return RedirectResponse(safe, status_code=303, headers=HEADERS)


async def refused(request: Request, exc: Exception) -> Response:
    """The app's handler of :class:`WebRefused`: audited, shown as a plain page."""
    assert isinstance(exc, WebRefused)
    await audit(request, exc.action, "refused", exc.message)
    return render(request, "error.html", status=exc.status, message=exc.message)


__all__ = ["HEADERS", "WebRefused", "WebUser", "audit", "check_csrf", "csrf_field",
           "read_form", "redirect", "render", "require_user"]
